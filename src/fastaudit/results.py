"""The result schema a wheel's audit is stored and emitted in: the `show --json` object (auditwheel's
field names plus ours under "fastaudit") and the error object. Below scan and store, which keep it;
the renderers in report/ only read it."""
from __future__ import annotations

import os
from typing import Any

from fastaudit.analyze import Reason, WheelReport
from fastaudit.errors import FastauditError
from fastaudit.policy import POLICY_DATA_VERSION, Policy

# Version of the "fastaudit" object in `show --json`; the top-level "version" is auditwheel's.
SCHEMA_VERSION = 1


def tag_of(policy: Policy | None) -> str | None:
    return policy.tag if policy else None


def _reason(r: Reason) -> dict[str, str]:
    return {"criterion": r.criterion, "member": r.member, "library": r.library, "detail": r.detail,
            "message": r.describe()}


def _ours(report: WheelReport) -> dict[str, Any]:
    ours: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "policy_data": POLICY_DATA_VERSION,
        "declared_tags": list(report.declared_tags),
        "over_promises": report.over_promises,
        "over_promise_reasons": [_reason(r) for r in report.over_promise_reasons],
        "ignored_members": [_reason(r) for r in report.ignored],
    }
    if report.pure:
        return ours
    overall = report.overall
    assert overall is not None  # a platform report always has a verdict
    ours.update({
        "arch": report.arch,
        "libc": report.libc,
        "overall_aliases": list(overall.alias_tags),
        "criteria": {
            "symbol_version": tag_of(report.symbol_policy),
            "external_library": tag_of(report.external_policy),
            "blacklisted_symbol": tag_of(report.blacklist_policy),
            "isa": tag_of(report.isa_policy),
            "pyfpe": tag_of(report.pyfpe_policy),
            "ucs2": tag_of(report.ucs2_policy),
        },
        "reasons": [_reason(r) for r in report.reasons],
        "elf_members": list(report.elf_members),
    })
    return ours


def to_json(report: WheelReport) -> dict[str, Any]:
    """The `show --json` object. Field names shared with auditwheel mean the same thing there."""
    if report.pure:
        return {"version": 1, "wheel": report.wheel, "pure": True, "fastaudit": _ours(report)}
    return {
        "version": 1,
        "wheel": report.wheel,
        "pure": False,
        "overall_tag": tag_of(report.overall),
        "sym_tag": tag_of(report.symbol_policy),
        "pyfpe": bool(report.pyfpe_policy and report.pyfpe_policy.is_linux),
        "ucs2": bool(report.ucs2_policy and report.ucs2_policy.is_linux),
        "unsupported_isa": bool(report.isa_policy and report.isa_policy.is_linux),
        "versioned_symbols": {k: list(v) for k, v in report.versioned_symbols.items()},
        # resolved on no host: a library outside the wheel has no path to give
        "external_libs": {soname: None for soname in report.external_libs},
        "policy_upgrades": {
            tag: {
                **({"libs_to_eliminate": list(u.libs_to_eliminate)} if u.libs_to_eliminate else {}),
                **({"blacklisted_symbols": {k: list(v) for k, v in u.blacklisted_symbols.items()}}
                   if u.blacklisted_symbols else {}),
            }
            for tag, u in report.policy_upgrades.items()
        },
        "fastaudit": _ours(report),
    }


def error_json(path: str, error: FastauditError) -> dict[str, Any]:
    """auditwheel's error object, for a wheel that could not be audited."""
    return {"version": 1, "wheel": os.path.basename(path), "error": str(error)}
