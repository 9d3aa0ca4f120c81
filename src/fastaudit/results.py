"""The result schema a wheel's audit is stored and emitted in: the `show --json` object (auditwheel's
field names plus ours under "fastaudit") and the error object. Below scan and store, which keep it;
the renderers in report/ only read it."""
from __future__ import annotations

import os
from typing import Any

from fastaudit.abi3 import Abi3Member, Abi3Report
from fastaudit.analyze import Reason, RebuildImage, WheelReport
from fastaudit.errors import FastauditError
from fastaudit.policy import POLICY_DATA_VERSION, Policy
from fastaudit.policy.stable_abi import PyVersion, format_version

# Version of the "fastaudit" object in `show --json` (schema/show-v<N>.json); the top-level
# "version" is auditwheel's. 2: the "abi3" criterion. 3: "executable_stack" and "rebuild_image".
# Objects of older versions stay readable: the renderers treat a missing field as "not checked".
SCHEMA_VERSION = 3


def tag_of(policy: Policy | None) -> str | None:
    return policy.tag if policy else None


def _reason(r: Reason) -> dict[str, str]:
    return {"criterion": r.criterion, "member": r.member, "library": r.library, "detail": r.detail,
            "message": r.describe()}


def _version(version: PyVersion | None) -> str | None:
    return format_version(version) if version else None


def _abi3_member(m: Abi3Member) -> dict[str, Any]:
    """One object; the fields abi3audit's --report also has (is_abi3, is_abi3_baseline_compatible,
    baseline, computed, non_abi3_symbols, future_abi3_objects) mean the same thing there."""
    return {
        "member": m.member,
        "is_abi3": not m.non_abi3_symbols,
        "is_abi3_baseline_compatible": m.baseline is None or m.computed <= m.baseline,
        "baseline": _version(m.baseline),
        "computed": _version(m.computed),
        "needed": _version(m.needed),
        "non_abi3_symbols": list(m.non_abi3_symbols),
        "future_abi3_objects": {name: format_version(v) for name, v in m.future_abi3_objects.items()},
        "foreign_symbols": dict(m.foreign_symbols),
        "guarded_symbols": list(m.guarded_symbols),
        "version_specific": m.version_specific,
        "free_threaded": list(m.free_threaded),
    }


def abi3_json(abi3: Abi3Report | None) -> dict[str, Any] | None:
    if abi3 is None:
        return None
    return {
        "baseline": _version(abi3.baseline),
        "computed": _version(abi3.computed),
        "over_promises": abi3.over_promises,
        "non_abi3_symbols": list(abi3.non_abi3_symbols),
        "future_abi3_objects": {name: format_version(v) for name, v in sorted(
            {n: v for m in abi3.members for n, v in m.future_abi3_objects.items()}.items())},
        "free_threaded_claims": list(abi3.free_threaded_claims),
        "problems": [{"member": member, "message": f"{member}: {detail}"} for member, detail in abi3.reasons],
        "members": [_abi3_member(m) for m in abi3.members],
    }


def rebuild_image_json(rebuild: RebuildImage | None) -> dict[str, Any] | None:
    if rebuild is None:
        return None
    image = rebuild.image or rebuild.oldest
    return {
        "for_tag": rebuild.tag,
        "old_enough": rebuild.image is not None,
        "family": image.family if image else None,
        "image": image.image if image else None,
        "libc_release": image.release if image else None,
        "base": image.base if image else None,
        "end_of_life": image.end_of_life if image else None,
        "message": rebuild.describe(),
    }


def _ours(report: WheelReport) -> dict[str, Any]:
    ours: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "policy_data": POLICY_DATA_VERSION,
        "declared_tags": list(report.declared_tags),
        "over_promises": report.over_promises,
        "over_promise_reasons": [_reason(r) for r in report.over_promise_reasons],
        "ignored_members": [_reason(r) for r in report.ignored],
        "abi3": abi3_json(report.abi3),
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
        "executable_stack": [_reason(r) for r in report.executable_stack],
        "rebuild_image": rebuild_image_json(report.rebuild_image),
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
