"""Where auditwheel's verdict depends on the host it runs on, proved from the wheel's own bytes.

Each explanation is accepted only when binutils' readelf (an oracle independent of both tools)
shows the fact it rests on in the wheel's ELF members, and auditwheel's output shows the
host-dependent behaviour. Anything else is an unexplained difference and fails the test.
"""
from __future__ import annotations

import importlib.resources
import json
import os
import re
import subprocess
import tempfile
import zipfile
from pathlib import Path

from fastaudit.policy import libc_symbols_beyond, policy_for_tag

ELF_MAGIC = b"\x7fELF"


def host_is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError):
        return False


def readelf(args: list[str], content: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".so") as f:
        f.write(content)
        f.flush()
        return subprocess.run(["readelf", "-W", *args, f.name], capture_output=True, text=True,
                              check=True).stdout


def elf_members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        out = {}
        for info in zf.infolist():
            if info.is_dir() or info.filename.endswith(".py"):
                continue
            with zf.open(info) as f:
                if f.read(4) != ELF_MAGIC:
                    continue
            out[info.filename] = zf.read(info)
        return out


def needed_by_readelf(content: bytes) -> list[str]:
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf(["-d"], content))


def _musl_members(wheel: Path) -> dict[str, list[str]]:
    """Members whose readelf -d shows a musl libc, by either of its names."""
    found = {}
    for name, content in elf_members(wheel).items():
        needed = needed_by_readelf(content)
        if any(n.startswith("libc.musl-") or n == "libc.so" for n in needed):
            found[name] = needed
    return found


def _musl_libc_has_no_versions(wheel: Path) -> bool:
    """musl exports no symbol versions: no member has a version need on its libc."""
    for content in elf_members(wheel).values():
        if any(f.startswith("libc.musl-") or f == "libc.so" for f in version_needs(content)):
            return False
    return True


def _imports_beyond_musl_1_1(wheel: Path, arch: str) -> list[str]:
    """Strong undefined dynamic symbols (readelf --dyn-syms) of any member that musl 1.1 does not
    export, by our symbol history, and no member defines."""
    beyond = libc_symbols_beyond(policy_for_tag(f"musllinux_1_1_{arch}"))
    imported, defined = set(), set()
    for content in elf_members(wheel).values():
        for row in readelf(["--dyn-syms"], content).splitlines():
            fields = row.split()
            if len(fields) < 8 or not fields[0].rstrip(":").isdigit():
                continue
            # the last two fields: ppc64's "[<localentry>: 8]" may come between Vis and Ndx
            name, ndx = fields[-1].split("@")[0], fields[-2]
            if ndx != "UND":
                defined.add(name)
            elif fields[4] != "WEAK":
                imported.add(name)
    return sorted((imported - defined) & beyond.keys())


def _all_members_static(wheel: Path) -> bool:
    """The wheel has ELF members and readelf -d finds no dynamic section in any of them."""
    members = elf_members(wheel)
    return bool(members) and all("There is no dynamic section" in readelf(["-d"], content)
                                 for content in members.values())


def explain_difference(wheel: Path, ours: dict, theirs: dict | None, stderr: str) -> str | None:
    arch_musl = re.match(r"musllinux_1_[12]_(\w+)$", ours.get("overall_tag") or "")
    if arch_musl:
        arch = arch_musl.group(1)
        musl = _musl_members(wheel)
        plain_libc_so = sorted(m for m, needed in musl.items() if "libc.so" in needed)
        if plain_libc_so and theirs is None and "Magic number does not match" in stderr:
            # auditwheel searched the host for libc.so and opened glibc's linker script
            return f"{plain_libc_so[0]} needs plain libc.so; auditwheel crashed opening the host's libc.so"
        if plain_libc_so and theirs and theirs.get("overall_tag") == f"linux_{arch}" \
                and "libc.so" in theirs.get("external_libs", {}):
            return f"{plain_libc_so[0]} needs plain libc.so (musl's libc); auditwheel calls it external"
        # ours keeps musllinux_1_1 only when no member imports a symbol musl 1.1 lacks
        if musl and host_is_glibc() and theirs and theirs.get("overall_tag") == f"musllinux_1_2_{arch}" \
                and ours["overall_tag"] == f"musllinux_1_1_{arch}" and _musl_libc_has_no_versions(wheel) \
                and not _imports_beyond_musl_1_1(wheel, arch):
            return ("a glibc host makes auditwheel judge musl wheels by musllinux_1_2 alone; this one imports "
                    "nothing musl 1.1 lacks")
        if not musl and _all_members_static(wheel) and host_is_glibc() and theirs \
                and theirs.get("overall_tag") == f"musllinux_1_2_{arch}" \
                and ours["overall_tag"] == f"musllinux_1_1_{arch}" and "can't determine musl libc version" in stderr:
            # a static executable imports nothing from any libc: no musl release is ruled out
            return ("every ELF member is statically linked (no dynamic section); a glibc host makes "
                    "auditwheel judge musl wheels by musllinux_1_2 alone")
    return None


def version_needs(content: bytes) -> dict[str, set[str]]:
    """File -> version names from readelf -V's version needs section (.gnu.version_r) only."""
    text = readelf(["-V"], content)
    needs_section = re.split(r"Version needs section", text, maxsplit=1)
    needs: dict[str, set[str]] = {}
    if len(needs_section) < 2:
        return needs
    library = None
    for line in re.split(r"\n(?=Version \w+ section)", needs_section[1])[0].splitlines():
        file_match = re.search(r"File: (\S+)", line)
        if file_match:
            library = file_match.group(1)
            needs.setdefault(library, set())
            continue
        name_match = re.search(r"Name: (\S+)", line)
        if name_match and library:
            needs[library].add(name_match.group(1))
    return needs


def _auditwheel_policies(tag: str) -> list[dict]:
    """auditwheel's own policy records (its installed JSON) for the libc family of a tag."""
    family = "musllinux" if tag.startswith("musllinux") else "manylinux"
    data = importlib.resources.files("auditwheel.policy").joinpath(f"{family}-policy.json").read_text()
    return json.loads(data)


def _reported_policy_whitelist(sym_tag: str) -> set[str]:
    """The libraries that the policy whose symbol set auditwheel reports treats as the system's.

    auditwheel scores each policy P (newest first) with the versions its wheel needs plus those of
    the host libraries outside P's whitelist, and reports the symbol set of the first policy that
    reaches the best score: the policy of sym_tag itself, or the newest policy of the architecture
    when every score is plain linux (sym_tag linux_<arch>). Its external_libs still names a
    library that only older policies exclude (libexpat, libmvec), but its versions are not counted.
    """
    arch = re.sub(r"^(manylinux_\d+_\d+|manylinux\w*?|musllinux_\d+_\d+|linux)_", "", sym_tag)
    records = [r for r in _auditwheel_policies(sym_tag) if r["name"] != "linux" and arch in r["symbol_versions"]]
    for record in records:
        if sym_tag in (f"{name}_{arch}" for name in (record["name"], *record["aliases"])):
            return set(record["lib_whitelist"])
    if sym_tag == f"linux_{arch}" and records:
        return set(min(records, key=lambda r: r["priority"])["lib_whitelist"])
    return set()


def host_library_versions(theirs: dict) -> dict[str, set[str]]:
    """The version needs, as readelf shows them, of the host libraries auditwheel resolved and
    counted in its versioned_symbols (those outside the whitelist of the policy it reports)."""
    whitelist = _reported_policy_whitelist(theirs.get("sym_tag") or "")
    versions: dict[str, set[str]] = {}
    for soname, path in (theirs.get("external_libs") or {}).items():
        if path and soname not in whitelist:
            for library, names in version_needs(Path(path).read_bytes()).items():
                versions.setdefault(library, set()).update(names)
    return versions
