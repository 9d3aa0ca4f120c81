#!/usr/bin/env python3
"""Choose the "mirror" wheel corpus (bench/corpus/mirror-wheels.txt) from PyPI's JSON API.

    python bench/select_corpus.py [--write] [--refresh]
    python bench/select_corpus.py --table SET   # counts of a fetched set, as Markdown

For each (project, release) in SELECTION below, the release's Linux wheels are read from
https://pypi.org/pypi/<project>/json (one request per project, kept in
~/.cache/fastaudit/pypi-json so a re-run asks PyPI nothing), and up to ``limit`` of them are
chosen by a fixed rule:

* skipped: yanked files, wheels already in another list of bench/corpus (the new set is disjoint
  from the earlier ones), and wheels over MAX_WHEEL_BYTES unless the project is in LARGE_OK;
* skipped too: a wheel that pip may not fetch by its name, as another file of the release has the
  same Python and ABI tags and a subset of its platform tags (uv ships a riscv64 wheel tagged
  manylinux_2_31 alone and one tagged manylinux_2_31 + musllinux_1_1);
* each wheel falls in a slot (architecture, libc family, interpreter kind: cp, free-threaded cpXYt,
  abi3, PyPy pp, or py3-none; Python-2-only wheels are skipped); within a slot the wheel for
  CPython 3.12 (else the nearest minor) is kept, for free-threaded and PyPy slots the newest;
* at most one free-threaded and one PyPy wheel per release (PER_RELEASE_KIND_LIMIT);
* the first pick of a release is its x86_64 manylinux slot (what most users install); after that,
  slot by slot, the one whose architecture, libc family and interpreter kind are least represented
  in the corpus chosen so far. So a release's rare builds (riscv64, s390x, musllinux on armv7l,
  PyPy, free-threaded) are chosen before a second x86_64 wheel.

Releases are pinned here (not "latest"), and so is every file, by the sha256 PyPI publishes: the
same command writes the same list. Without --write it prints the choice and the counts;
with --write it rewrites mirror-wheels.txt and mirror-wheels.sha256.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
import zipfile
from collections import Counter
from pathlib import Path
from typing import NamedTuple

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
SET_STEM = "mirror-wheels"
JSON_CACHE = Path.home() / ".cache" / "fastaudit" / "pypi-json"
MAX_WHEEL_BYTES = 150_000_000
LARGE_OK = {"pyside6-essentials"}  # named by issue 13 (abi3audit's one flagged wheel)
PREFERRED_MINOR = 12
# at most this many wheels of these interpreter kinds per release, so that CPython builds stay most
# of the corpus as they are most of a mirror
PER_RELEASE_KIND_LIMIT = {"cpt": 1, "pp": 1}

# (category, project, release, limit). Categories are the domains of the brief; "old" holds older
# releases chosen for their manylinux1 / manylinux2010 / manylinux_2_24 / plain linux_* tags.
SELECTION: list[tuple[str, str, str, int]] = [
    ("imaging", "pillow", "13.0.0", 8),
    ("imaging", "opencv-python-headless", "5.0.0.93", 2),
    ("imaging", "imageio-ffmpeg", "0.8.1", 2),
    ("media", "av", "19.0.2", 4),
    ("media", "soundfile", "0.14.0", 2),
    ("db", "psycopg2-binary", "2.9.13", 8),
    ("db", "psycopg-binary", "3.3.9", 8),
    ("db", "confluent-kafka", "2.16.1", 4),
    ("db", "pymssql", "2.4.6", 4),
    ("db", "oracledb", "26.1.0", 4),
    ("crypto", "cryptography", "50.0.2", 10),
    ("crypto", "bcrypt", "5.0.0", 8),
    ("crypto", "pynacl", "1.6.2", 6),
    ("crypto", "pycryptodome", "4.4.0", 6),
    ("crypto", "pycryptodomex", "3.24.2", 4),
    ("crypto", "argon2-cffi-bindings", "26.2.0", 6),
    ("geo", "shapely", "2.2.0", 4),
    ("geo", "pyproj", "3.8.0", 4),
    ("geo", "rasterio", "1.5.2", 2),
    ("geo", "fiona", "1.10.1", 2),
    ("geo", "netcdf4", "1.7.5.1.post1", 4),
    ("geo", "h5py", "3.16.0", 4),
    ("compress", "zstandard", "0.25.0", 6),
    ("compress", "lz4", "4.4.5", 4),
    ("compress", "brotli", "1.2.1", 6),
    ("compress", "cramjam", "2.14.0", 8),
    ("xml", "lxml", "6.1.3", 10),
    ("net", "pycurl", "7.49.0", 4),
    ("net", "pyzmq", "27.3.0", 8),
    ("net", "grpcio", "1.85.3", 6),
    ("net", "uvloop", "0.23.0", 4),
    ("net", "aiohttp", "3.14.5", 8),
    ("net", "gevent", "26.9.0", 6),
    ("net", "greenlet", "3.5.6", 6),
    ("ml", "onnxruntime", "1.32.0", 4),
    ("ml", "tokenizers", "0.23.3", 10),
    ("ml", "safetensors", "0.8.0", 8),
    ("ml", "sentencepiece", "0.2.3", 4),
    ("ml", "lightgbm", "4.7.0", 2),
    ("ml", "hf-xet", "1.8.0", 6),
    ("data", "pyarrow", "26.0.1", 3),
    ("data", "pandas", "3.1.1", 6),
    ("data", "numpy", "2.5.5", 8),
    ("data", "scipy", "1.18.1", 4),
    ("misc", "pymupdf", "2.1", 2),
    ("misc", "pyyaml", "6.0.4", 6),
    ("misc", "orjson", "3.13.0", 6),
    ("misc", "ujson", "6.1.0", 6),
    ("misc", "msgpack", "1.2.4", 6),
    ("misc", "regex", "2026.11.19", 8),
    ("misc", "markupsafe", "3.0.4", 6),
    ("misc", "cffi", "2.1.1", 6),
    ("misc", "psutil", "7.2.2", 6),
    ("misc", "rapidfuzz", "3.14.6", 8),
    ("misc", "pydantic-core", "2.50.5", 10),
    ("misc", "nh3", "0.3.8", 10),
    ("misc", "rustworkx", "0.18.1", 6),
    ("tools", "ruff", "0.17.6", 6),
    ("tools", "uv", "0.13.9", 6),
    ("tools", "cmake", "4.4.5", 4),
    ("tools", "ninja", "1.13.2", 8),
    ("gui", "pyside6-essentials", "6.12.0", 1),
    # older releases: manylinux1 (glibc 2.5), manylinux2010 (2.12), manylinux_2_24, linux_*
    ("old", "numpy", "1.21.3", 3),
    ("old", "pillow", "8.3.2", 3),
    ("old", "pillow", "10.3.0", 3),
    ("old", "lxml", "5.4.0", 3),
    ("old", "psycopg2-binary", "2.8.6", 3),
    ("old", "cryptography", "37.0.4", 4),
    ("old", "cryptography", "39.0.2", 3),
    ("old", "cffi", "1.15.1", 4),
    ("old", "pyyaml", "5.4.1", 3),
    ("old", "scipy", "1.6.3", 2),
    ("old", "h5py", "3.1.0", 2),
    ("old", "pandas", "1.3.5", 2),
    ("old", "pandas", "2.2.2", 3),
    ("old", "shapely", "1.7.1", 2),
    ("old", "netcdf4", "1.5.6", 2),
    ("old", "fiona", "1.8.20", 1),
    ("old", "rasterio", "1.2.10", 1),
    ("old", "grpcio", "1.46.5", 2),
    ("old", "pyproj", "3.2.1", 2),
    ("old", "pyproj", "2.4.2.post1", 1),
    ("old", "gevent", "22.10.2", 2),
    ("old", "pymupdf", "1.19.2", 1),
    ("old", "psutil", "5.9.8", 3),
    ("old", "zstandard", "0.21.0", 3),
    ("old", "pydantic-core", "2.5.0", 3),
    ("old", "orjson", "3.6.9", 2),
    ("old", "pyzmq", "22.3.0", 3),
    ("old", "ujson", "4.3.0", 3),
]

_WHEEL_RE = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-(?P<build>\d[^-]*))?"
    r"-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$"
)
_ARCH_RE = re.compile(r"linux_?\d*_?\d*_(x86_64|aarch64|i686|ppc64le|ppc64|s390x|armv7l|armv6l|riscv64|loongarch64)$")


class Candidate(NamedTuple):
    filename: str
    sha256: str
    size: int
    arch: str
    family: str  # manylinux, musllinux, or linux (a plain linux_<arch> tag)
    kind: str  # cp, cpt (free-threaded), abi3, pp, py


def project_json(project: str, refresh: bool) -> dict:
    """PyPI's JSON document for a project, fetched once and kept in JSON_CACHE."""
    JSON_CACHE.mkdir(parents=True, exist_ok=True)
    path = JSON_CACHE / f"{project}.json"
    if refresh or not path.is_file():
        with urllib.request.urlopen(f"https://pypi.org/pypi/{project}/json", timeout=60) as resp:
            path.write_bytes(resp.read())
    return json.loads(path.read_text())


def classify(filename: str) -> tuple[str, str, str] | None:
    """(arch, libc family, interpreter kind) of a Linux wheel, or None for other platforms."""
    m = _WHEEL_RE.match(filename)
    if m is None:
        return None
    plats = m["plat"].split(".")
    arches = {am.group(1) for p in plats if (am := _ARCH_RE.search(p))}
    if len(arches) != 1:
        return None
    if any(p.startswith("musllinux") for p in plats):
        family = "musllinux"
    elif any(p.startswith("manylinux") for p in plats):
        family = "manylinux"
    else:
        family = "linux"
    abi, py = m["abi"], m["py"]
    if abi == "abi3":
        kind = "abi3"
    elif py.startswith("pp"):
        kind = "pp"
    elif re.fullmatch(r"cp\d+t", abi):
        kind = "cpt"
    elif abi == "none":
        kind = "py"
    else:
        kind = "cp"
    return arches.pop(), family, kind


def _minor(filename: str) -> int:
    m = re.search(r"-(?:cp|pp)3(\d+)", filename)
    return int(m.group(1)) if m else 0


def _slot_key(c: Candidate) -> tuple:
    # abi3 builds for different baselines (cp37-abi3, cp311-abi3) are distinct builds
    baseline = _minor(c.filename) if c.kind == "abi3" else 0
    return (c.arch, c.family, c.kind, baseline)


def _better(a: Candidate, b: Candidate) -> bool:
    """Within one slot: CPython 3.12 or the nearest minor; newest for free-threaded and PyPy."""
    ma, mb = _minor(a.filename), _minor(b.filename)
    if a.kind in ("cpt", "pp"):
        return (ma, a.filename) > (mb, b.filename)
    return (abs(ma - PREFERRED_MINOR), -ma, a.filename) < (abs(mb - PREFERRED_MINOR), -mb, b.filename)


def _pip_may_pick_other(filename: str, release_files: list[str]) -> bool:
    """Whether another wheel of the release has the same Python and ABI tags and a subset of the
    platform tags: then the pip arguments derived from this name may fetch that one instead."""
    m = _WHEEL_RE.match(filename)
    if m is None:
        return True
    plats = set(m["plat"].split("."))
    for other in release_files:
        o = _WHEEL_RE.match(other)
        if other != filename and o and (o["py"], o["abi"]) == (m["py"], m["abi"]) \
                and set(o["plat"].split(".")) <= plats:
            return True
    return False


def candidates(doc: dict, release: str, exclude: set[str]) -> list[Candidate]:
    project = doc["info"]["name"].lower()
    files = doc["releases"].get(release)
    if files is None:
        raise SystemExit(f"select_corpus: {project} has no release {release}")
    slots: dict[tuple, Candidate] = {}
    names = [f["filename"] for f in files if f["packagetype"] == "bdist_wheel"]
    for f in files:
        name = f["filename"]
        if f["packagetype"] != "bdist_wheel" or f.get("yanked") or name in exclude or _pip_may_pick_other(name, names):
            continue
        if f["size"] > MAX_WHEEL_BYTES and project not in LARGE_OK:
            continue
        cls = classify(name)
        if cls is None or re.search(r"-(?:cp|pp|py)2\d*-", name):  # Python 2 only
            continue
        cand = Candidate(name, f["digests"]["sha256"], f["size"], *cls)
        key = _slot_key(cand)
        if key not in slots or _better(cand, slots[key]):
            slots[key] = cand
    return [slots[k] for k in sorted(slots)]


def choose(pool: list[Candidate], limit: int, seen: dict[str, Counter]) -> list[Candidate]:
    """Up to ``limit`` wheels: x86_64 manylinux first, then the least represented slots."""
    chosen: list[Candidate] = []
    pool = list(pool)
    first = [c for c in pool if c.arch == "x86_64" and c.family == "manylinux" and c.kind in ("cp", "abi3", "py")]
    while len(chosen) < limit:
        pool = [c for c in pool if sum(p.kind == c.kind for p in chosen) < PER_RELEASE_KIND_LIMIT.get(c.kind, limit)]
        if not pool:
            break
        if not chosen and first:
            pick = first[0]
        else:
            pick = min(pool, key=lambda c: (seen["arch"][c.arch] + seen["family"][c.family]
                                            + seen["kind"][c.kind], _slot_key(c)))
        pool.remove(pick)
        chosen.append(pick)
        seen["arch"][pick.arch] += 1
        seen["family"][pick.family] += 1
        seen["kind"][pick.kind] += 1
    return chosen


def existing_wheels() -> set[str]:
    names = set()
    for path in CORPUS_DIR.glob("*.txt"):
        if path.stem == SET_STEM:
            continue
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                names.add(parts[1])
    return names


def select(refresh: bool) -> list[tuple[str, Candidate]]:
    exclude = existing_wheels()
    seen: dict[str, Counter] = {"arch": Counter(), "family": Counter(), "kind": Counter()}
    out: list[tuple[str, Candidate]] = []
    docs: dict[str, dict] = {}
    for category, project, release, limit in SELECTION:
        if project not in docs:
            docs[project] = project_json(project, refresh)
        picked = choose(candidates(docs[project], release, exclude), limit, seen)
        if not picked:
            raise SystemExit(f"select_corpus: no eligible Linux wheel in {project} {release}")
        for cand in picked:
            exclude.add(cand.filename)
            out.append((category, cand))
    return out


HEADER = """\
# Mirror wheel corpus: {count} real PyPI wheels from {projects} projects that ship Linux binaries, most of
# them vendoring native libraries, none of them in the other lists of bench/corpus. Chosen by
# bench/select_corpus.py from PyPI's JSON API (its docstring gives the rule; re-run it to check this
# list). Same format and fetch rule as dev-wheels.txt (see its header): one wheel per line,
#   <category> <exact wheel file name>
# and mirror-wheels.sha256 (next to this file) pins the sha256 PyPI publishes for every wheel.
# Fetch with  python bench/fetch_wheels.py --set mirror
# Categories (domains): imaging, media, db, crypto, geo, compress, xml, net, ml, data, misc, tools,
#   gui (PySide6-Essentials), old (older releases, for manylinux1 / manylinux2010 / manylinux_2_24 /
#   plain linux_<arch> tags).
# {summary}
# {count} wheels, {size} bytes (about {size_mb} MB) in all.
"""


def summary_lines(chosen: list[tuple[str, Candidate]]) -> list[str]:
    by = {k: Counter() for k in ("arch", "family", "kind")}
    for _, c in chosen:
        by["arch"][c.arch] += 1
        by["family"][c.family] += 1
        by["kind"][c.kind] += 1
    return [f"{k}: " + ", ".join(f"{n} {v}" for v, n in by[k].most_common()) for k in by]


def tag_family(filename: str) -> str:
    """The oldest platform tag family a wheel's name declares (manylinux_2_17 is manylinux2014)."""
    plats = filename[:-4].split("-")[-1].split(".")
    legacy = {"2_5": "manylinux1", "2_12": "manylinux2010", "2_17": "manylinux2014"}
    glibc = [tuple(map(int, m.groups())) for p in plats if (m := re.match(r"manylinux_(\d+)_(\d+)_", p))]
    glibc += [{"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}[m.group(1)]
              for p in plats if (m := re.match(r"(manylinux1|manylinux2010|manylinux2014)_", p))]
    if glibc:
        major, minor = min(glibc)
        return legacy.get(f"{major}_{minor}", f"manylinux_{major}_{minor}")
    musl = sorted(m.group(1) for p in plats if (m := re.match(r"(musllinux_\d+_\d+)_", p)))
    if musl:
        return musl[0]
    return "linux" if any(re.match(r"linux_", p) for p in plats) else "other"


def grafted_libraries(path: Path) -> int:
    """Shared libraries in the wheel's top-level ``<dist>.libs/`` folder (auditwheel's graft)."""
    with zipfile.ZipFile(path) as zf:
        return sum(1 for n in zf.namelist() if re.match(r"[^/]+\.libs/[^/]+\.so(\.|$)", n))


def table(set_name: str) -> str:
    """Markdown counts of a fetched set: architecture, tag family, interpreter kind, grafts."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fetch_wheels  # noqa: PLC0415 (a sibling script, not a package)

    paths = fetch_wheels.fetch(set_name)
    rows: dict[str, Counter] = {"architecture": Counter(), "tag family (oldest tag)": Counter(),
                                "interpreter": Counter()}
    grafted = graft_total = 0
    for path in paths:
        cls = classify(path.name)
        arch, _, kind = cls if cls else ("none (pure or not Linux)", "", "other")
        rows["architecture"][arch] += 1
        rows["tag family (oldest tag)"][tag_family(path.name)] += 1
        names = {"cp": "CPython (cpXY)", "cpt": "free-threaded (cpXYt)", "abi3": "abi3",
                 "pp": "PyPy (ppXY)", "py": "py3-none (executables)", "other": "other"}
        rows["interpreter"][names[kind]] += 1
        libs = grafted_libraries(path)
        grafted += libs > 0
        graft_total += libs
    out = [f"{len(paths)} wheels of set `{set_name}`.", ""]
    for title, counts in rows.items():
        out += [f"| {title} | wheels |", "|---|---:|"]
        out += [f"| {k} | {n} |" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        out.append("")
    out.append(f"Wheels with grafted libraries in `<dist>.libs/`: {grafted} ({graft_total} libraries).")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite mirror-wheels.txt and .sha256")
    parser.add_argument("--refresh", action="store_true", help="fetch the PyPI JSON again")
    parser.add_argument("--table", metavar="SET", help="print the counts of a fetched wheel set and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    chosen = select(args.refresh)
    size = sum(c.size for _, c in chosen)
    lines = summary_lines(chosen)
    if not args.write:
        for category, c in chosen:
            print(f"{category:9} {c.size / 1e6:7.1f} MB  {c.filename}")
        print("\n".join(lines), f"\n{len(chosen)} wheels, {size / 1e9:.2f} GB", sep="")
        return 0
    header = HEADER.format(count=len(chosen), projects=len({p for _, p, _, _ in SELECTION}),
                           summary="\n# ".join(lines), size=size, size_mb=round(size / 1e6))
    (CORPUS_DIR / f"{SET_STEM}.txt").write_text(
        header + "".join(f"{category} {c.filename}\n" for category, c in chosen))
    (CORPUS_DIR / f"{SET_STEM}.sha256").write_text("".join(f"{c.sha256}  {c.filename}\n" for _, c in chosen))
    print(f"wrote {len(chosen)} wheels ({size / 1e9:.2f} GB) to {CORPUS_DIR}/{SET_STEM}.txt", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
