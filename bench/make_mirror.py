#!/usr/bin/env python3
"""Lay out a bandersnatch mirror of N wheels whose ELF members gcc built, for bench/bench_mirror.py.

    python bench/make_mirror.py OUT [--wheels 100000] [--seed 11] [--jobs 2]
    python bench/make_mirror.py OUT --add 1000          # a "night": the next 1,000 wheels arrive

Every wheel lands at OUT/web/packages/<h[0:2]>/<h[2:4]>/<h[4:]>/<file>, h its BLAKE2b-256, as
bandersnatch lays it out (the simple index is not written: `fastaudit scan` does not read it).

What is real and what is varied:
- A pool of shared objects is built once with gcc (tests/elfbuild.py, linked against its stub
  system libraries: libc.so.6, libm.so.6, libpthread.so.0, libstdc++.so.6 and libgcc_s.so.1 whose
  exports carry exact GLIBC_/GLIBCXX_/CXXABI_/GCC_ versions from 2.2.5 to 2.35): ~160 grafted
  libraries (`libjpeg-<hash>.so.62` ...; a quarter need another grafted one through RUNPATH
  $ORIGIN) and ~1,300 extension modules, each importing its own mix of versioned symbols and
  holding a .rodata blob (2-60 KB, about 3:1 compressible) so that wheels weigh tens of KB.
- Wheels are drawn from a seeded stream of releases: projects recur (a few are popular), each
  binary release ships one wheel per CPython version (cp38-cp313, or one abi3 wheel), with 1-4
  extension modules and 0-3 grafted libraries in `<dist>.libs/` (1-7 ELF members). A project
  keeps its grafted libraries from release to release (a tenth of its releases change them), so
  the same library bytes recur across Python versions, releases and projects, as on PyPI.
- Unique content per wheel, honestly: every extension member of every wheel differs from every
  other member of the mirror in 32 bytes of a section that is not loaded (`.fa_mirror_id`,
  SHT_PROGBITS without SHF_ALLOC, assembled by gcc from a placeholder). Its RUNPATH
  `$ORIGIN/../<dist>.libs` is written into a placeholder slot of .dynstr, NUL-padded, as
  `patchelf --set-rpath` does when the new string fits. Everything else in the member is gcc's.
- About 60% of the wheels are Linux (manylinux_2_5 .. 2_35 names, x86_64 only: the one gcc here;
  ~5% declare one policy older than their symbols allow), 20% pure, 20% Windows/macOS names. The
  non-Linux wheels hold only Python files: the scan classifies them by name and never opens them.
- Deterministic from --seed: the same seed gives the same mirror, byte for byte; --add continues
  the same stream, so a mirror of 10,000 plus --add 100 equals the first 10,100 of a larger one.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import random
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.elfbuild import build_shared_object, build_stub_lib, calling_source  # noqa: E402
from tests.zipcraft import S_IFREG, RawMember, record_hash, record_text, write_zip  # noqa: E402

POOL_FORMAT = 1
MANIFEST = "mirror.json"

# policy level -> the platform tag a wheel at that level declares (policy data: manylinux.json)
LEVEL_TAGS = (
    "manylinux_2_5_x86_64.manylinux1_x86_64",
    "manylinux_2_12_x86_64.manylinux2010_x86_64",
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_35_x86_64",
)
# how often an extension's symbols stop at each level (most of PyPI targets manylinux2014/_2_28)
LEVEL_WEIGHTS = (4, 4, 45, 3, 4, 25, 3, 9, 3)

# soname -> version -> the first level (index into LEVEL_TAGS) whose policy allows it
STUB_VERSIONS: dict[str, dict[str, int]] = {
    "libc.so.6": {"GLIBC_2.2.5": 0, "GLIBC_2.3.4": 0, "GLIBC_2.4": 0, "GLIBC_2.7": 1, "GLIBC_2.11": 1,
                  "GLIBC_2.14": 2, "GLIBC_2.17": 2, "GLIBC_2.18": 3, "GLIBC_2.25": 4, "GLIBC_2.27": 4,
                  "GLIBC_2.28": 5, "GLIBC_2.29": 6, "GLIBC_2.32": 7, "GLIBC_2.33": 7, "GLIBC_2.34": 7,
                  "GLIBC_2.35": 8},
    "libm.so.6": {"GLIBC_2.2.5": 0, "GLIBC_2.27": 4, "GLIBC_2.29": 6},
    "libpthread.so.0": {"GLIBC_2.2.5": 0, "GLIBC_2.3.2": 0, "GLIBC_2.12": 1},
    "libstdc++.so.6": {"GLIBCXX_3.4": 0, "CXXABI_1.3": 0, "GLIBCXX_3.4.9": 1, "CXXABI_1.3.3": 1,
                       "GLIBCXX_3.4.14": 2, "GLIBCXX_3.4.19": 2, "CXXABI_1.3.7": 2, "GLIBCXX_3.4.21": 3,
                       "CXXABI_1.3.9": 3, "GLIBCXX_3.4.24": 4, "CXXABI_1.3.11": 4, "GLIBCXX_3.4.26": 6,
                       "GLIBCXX_3.4.29": 7, "CXXABI_1.3.13": 7, "GLIBCXX_3.4.30": 8},
    "libgcc_s.so.1": {"GCC_3.0": 0, "GCC_4.2.0": 0, "GCC_4.7.0": 2, "GCC_7.0.0": 4},
}
FUNCTIONS_PER_VERSION = 3
# chance that an extension links each library beyond libc
STUB_USE = {"libm.so.6": 0.4, "libpthread.so.0": 0.15, "libstdc++.so.6": 0.35, "libgcc_s.so.1": 0.25}

GRAFTED_BASES = (
    ("libgfortran", 5), ("libquadmath", 0), ("libopenblas", 0), ("libjpeg", 62), ("libpng16", 16),
    ("libz", 1), ("libssl", 3), ("libcrypto", 3), ("libavcodec", 60), ("libavformat", 60),
    ("libavutil", 58), ("libswscale", 7), ("libtiff", 6), ("libwebp", 7), ("libfreetype", 6),
    ("libharfbuzz", 0), ("libxml2", 2), ("libyaml-0", 2), ("libffi", 8), ("libsqlite3", 0),
    ("libgomp", 1), ("libgeos_c", 1), ("libproj", 25), ("libhdf5", 310), ("libzstd", 1),
    ("liblzma", 5), ("libbz2", 1), ("libcurl", 4), ("libssh2", 1), ("libarrow", 1600),
)
GRAFTED_LIBS = 160
GRAFTED_SETS = 120
EXTENSIONS_WITHOUT_GRAFTED = 420
EXTENSIONS_PER_GRAFTED_SET = 7

ID_MARK = b"FA-MIRROR-ID:"
ID_BYTES = 32
RUNPATH_SLOT = "$ORIGIN/../" + "X" * 48 + ".libs"
MODULE_NAMES = ("_core", "_impl", "_speedups", "_native", "_ops", "_io", "_lib", "_ext")
PYTHONS = ("38", "39", "310", "311", "312", "313")
OTHER_PLATFORMS = ("win_amd64", "win32", "macosx_10_9_x86_64", "macosx_11_0_arm64")


# ---------------------------------------------------------------- the gcc-built pool


def _c_name(text: str) -> str:
    return re.sub(r"\W", "_", text)


def stub_functions() -> dict[str, dict[str, list[str]]]:
    """soname -> version -> the functions the stub exports under it."""
    return {soname: {version: [f"fa_{_c_name(soname)}_{_c_name(version)}_{k}" for k in range(FUNCTIONS_PER_VERSION)]
                     for version in versions}
            for soname, versions in STUB_VERSIONS.items()}


def _blob(rng: random.Random, size: int) -> bytes:
    """Bytes that deflate about 3:1, like code: a shuffle of a small vocabulary, half of it noise."""
    vocabulary = [rng.randbytes(8) for _ in range(48)]
    words = [rng.choice(vocabulary) if rng.random() < 0.75 else rng.randbytes(8) for _ in range(size // 8)]
    return b"".join(words)


def _source(entry: str, callees: list[str], blob: Path, with_id: bool) -> str:
    """C source of one exported function calling `callees`, a .rodata blob and, for extensions, the
    non-loaded section that carries each wheel's unique bytes."""
    text = calling_source(entry, callees)
    text += f'__asm__(".pushsection .rodata.fa_blob,\\"a\\",@progbits\\n.incbin \\"{blob}\\"\\n.popsection\\n");\n'
    if with_id:
        mark = ID_MARK.decode() + "0" * ID_BYTES
        text += f'__asm__(".pushsection .fa_mirror_id,\\"\\",@progbits\\n.ascii \\"{mark}\\"\\n.popsection\\n");\n'
    return text


def _pick_imports(rng: random.Random, functions: dict[str, dict[str, list[str]]],
                  level: int) -> tuple[dict[str, list[str]], int]:
    """soname -> functions to import, all allowed at `level`, the libc ones reaching it when possible;
    and the level the imports really need."""
    chosen: dict[str, list[str]] = {}
    need = 0
    for soname, versions in functions.items():
        if soname != "libc.so.6" and rng.random() >= STUB_USE[soname]:
            continue
        allowed = [(v, f) for v, names in versions.items() if STUB_VERSIONS[soname][v] <= level for f in names]
        picks = rng.sample(allowed, min(len(allowed), rng.randint(1, 6)))
        if soname == "libc.so.6":
            top = max(STUB_VERSIONS[soname][v] for v in versions if STUB_VERSIONS[soname][v] <= level)
            picks.append(rng.choice([(v, f) for v, f in allowed if STUB_VERSIONS[soname][v] == top]))
        chosen[soname] = sorted({f for _, f in picks})
        need = max([need] + [STUB_VERSIONS[soname][v] for v, _ in picks])
    return chosen, need


@dataclass(frozen=True)
class Grafted:
    soname: str
    file: str
    level: int
    needs: tuple[int, ...]  # other grafted libraries (pool indices)


@dataclass(frozen=True)
class Extension:
    file: str
    level: int
    grafted_set: int | None  # index into the pool's grafted sets
    id_offset: int
    runpath_offset: int | None


def build_pool(pool_dir: Path, seed: int, jobs: int) -> dict:
    """Build (or load) the gcc-built objects; returns the pool description written to pool.json."""
    described = pool_dir / "pool.json"
    if described.is_file():
        pool = json.loads(described.read_text())
        if pool.get("format") == POOL_FORMAT and pool.get("seed") == seed:
            return pool
    started = time.monotonic()
    rng = random.Random(f"pool:{seed}")
    functions = stub_functions()
    stubs_dir = pool_dir / "stubs"
    stubs = {soname: build_stub_lib(stubs_dir, soname, versions) for soname, versions in functions.items()}
    blobs = pool_dir / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)

    def level_draw() -> int:
        return rng.choices(range(len(LEVEL_TAGS)), LEVEL_WEIGHTS)[0]

    # grafted libraries: built in order, each may need one built before it
    grafted: list[Grafted] = []
    grafted_dir = pool_dir / "grafted"
    for i in range(GRAFTED_LIBS):
        base, major = GRAFTED_BASES[i % len(GRAFTED_BASES)]
        digest = hashlib.sha256(f"{seed}:grafted:{i}".encode()).hexdigest()[:8]
        soname = f"{base}-{digest}.so.{major}" if major else f"{base}-{digest}.so"
        needs = (rng.randrange(i),) if i and rng.random() < 0.25 else ()
        imports, level = _pick_imports(rng, functions, level_draw())
        level = max([level] + [grafted[n].level for n in needs])
        blob = blobs / f"grafted{i}.bin"
        blob.write_bytes(_blob(rng, rng.randint(4, 60) * 1024))
        callees = [f for names in imports.values() for f in names] + [f"fa_grafted_{n}" for n in needs]
        source = _source(f"fa_grafted_{i}", callees, blob, with_id=False)
        link = [stubs[s] for s in imports] + [grafted_dir / grafted[n].soname for n in needs]
        build_shared_object(grafted_dir, soname, source, link=link, soname=soname,
                            runpath="$ORIGIN" if needs else None)
        grafted.append(Grafted(soname, f"grafted/{soname}", level, needs))

    def closure(index: int) -> list[int]:
        out = [index]
        for n in grafted[index].needs:
            out += [m for m in closure(n) if m not in out]
        return out

    sets: list[list[int]] = []
    while len(sets) < GRAFTED_SETS:
        members: list[int] = []
        for first in rng.sample(range(GRAFTED_LIBS), rng.randint(1, 3)):
            extra = [m for m in closure(first) if m not in members]
            if len(members) + len(extra) <= 3:
                members += extra
        if members:
            sets.append(sorted(members))

    # extensions: some with no grafted library, the rest linked against one grafted set each
    plans: list[tuple[int | None, int]] = [(None, i) for i in range(EXTENSIONS_WITHOUT_GRAFTED)]
    plans += [(s, k) for s in range(len(sets)) for k in range(EXTENSIONS_PER_GRAFTED_SET)]
    ext_dir = pool_dir / "extensions"
    jobs_list = []
    for index, (grafted_set, _) in enumerate(plans):
        imports, level = _pick_imports(rng, functions, level_draw())
        blob = blobs / f"ext{index}.bin"
        blob.write_bytes(_blob(rng, rng.randint(2, 60) * 1024))
        libs = sets[grafted_set] if grafted_set is not None else []
        callees = [f for names in imports.values() for f in names]
        callees += [f"fa_grafted_{n}" for n in libs if rng.random() < 0.8 or n == libs[0]]
        level = max([level] + [grafted[n].level for n in libs])
        source = _source(f"PyInit_ext{index}", callees, blob, with_id=True)
        link = [stubs[s] for s in imports] + [grafted_dir / grafted[n].soname for n in libs]
        jobs_list.append((index, grafted_set, level, source, link, libs))

    def build(job: tuple) -> Extension:
        index, grafted_set, level, source, link, libs = job
        name = f"ext{index}.so"
        path = build_shared_object(ext_dir, name, source, link=link, runpath=RUNPATH_SLOT if libs else None)
        data = path.read_bytes()
        id_offset = data.index(ID_MARK) + len(ID_MARK)
        runpath_offset = data.index(RUNPATH_SLOT.encode()) if libs else None
        return Extension(f"extensions/{name}", level, grafted_set, id_offset, runpath_offset)

    with cf.ThreadPoolExecutor(max(1, jobs)) as pool:  # gcc runs in subprocesses
        extensions = list(pool.map(build, jobs_list))
    pool_doc = {"format": POOL_FORMAT, "seed": seed, "build_seconds": round(time.monotonic() - started, 1),
                "grafted": [asdict(g) for g in grafted], "grafted_sets": sets,
                "extensions": [asdict(e) for e in extensions]}
    described.write_text(json.dumps(pool_doc))
    return pool_doc


# ---------------------------------------------------------------- the stream of releases


@dataclass
class Project:
    dist: str
    pure: bool
    level: int  # the policy its builds target: its extensions need no more
    grafted_set: int | None
    modules: int
    other_platforms: float
    abi3: bool
    releases: int = 0


@dataclass(frozen=True)
class WheelPlan:
    """Everything needed to write wheel number `index` of the stream."""

    index: int
    filename: str
    kind: str  # linux, pure, other
    dist: str
    version: str
    python: str
    extensions: tuple[tuple[str, int], ...] = ()  # (archive name, pool extension index)
    grafted: tuple[int, ...] = ()


def wheel_stream(pool: dict, seed: int):
    """Wheels in the order they arrive on the mirror; the same seed gives the same stream."""
    rng = random.Random(f"stream:{seed}")
    by_set: dict[int | None, list[int]] = {}
    for index, ext in enumerate(pool["extensions"]):
        by_set.setdefault(ext["grafted_set"], []).append(index)
    set_levels = [max(pool["grafted"][g]["level"] for g in members) for members in pool["grafted_sets"]]

    def pick_set(level: int) -> int:
        fitting = [s for s, need in enumerate(set_levels) if need <= level]
        return rng.choice(fitting) if fitting else rng.randrange(len(set_levels))

    def fits(candidates: list[int], level: int) -> list[int]:
        return [c for c in candidates if pool["extensions"][c]["level"] <= level] or candidates

    projects: list[Project] = []
    index = 0
    while True:
        if not projects or rng.random() < 0.3:
            n = len(projects)
            pure = rng.random() < 0.45
            level = rng.choices(range(len(LEVEL_TAGS)), LEVEL_WEIGHTS)[0]
            grafted_set = pick_set(level) if rng.random() < 0.6 else None
            projects.append(Project(f"mirror_proj{n:05d}", pure, level, grafted_set, rng.randint(1, 4),
                                    rng.choice((0.0, 0.33, 0.66)), rng.random() < 0.1))
        project = projects[int(len(projects) * rng.random() ** 2)]  # the early projects are the popular ones
        project.releases += 1
        version = f"{project.releases // 10}.{project.releases % 10}.0"
        if project.pure:
            yield WheelPlan(index, f"{project.dist}-{version}-py3-none-any.whl", "pure", project.dist, version, "py3")
            index += 1
            continue
        if rng.random() < 0.1 and project.releases > 1:  # a release that changes its grafted libraries
            project.grafted_set = pick_set(project.level) if rng.random() < 0.7 else None
        candidates = fits(by_set[project.grafted_set], project.level)
        if project.grafted_set is not None:
            candidates += fits(by_set[None], project.level)
        chosen = rng.sample(candidates, min(project.modules, len(candidates)))
        if project.grafted_set is not None and not any(
                pool["extensions"][c]["grafted_set"] == project.grafted_set for c in chosen):
            # someone must need the grafted libraries
            chosen[0] = rng.choice(fits(by_set[project.grafted_set], project.level))
        names = rng.sample(MODULE_NAMES, len(chosen))
        grafted = tuple(pool["grafted_sets"][project.grafted_set]) if project.grafted_set is not None else ()
        needed = max(pool["extensions"][c]["level"] for c in chosen)
        declared = needed - 1 if needed and rng.random() < 0.05 else needed  # 5% over-promise
        tag = LEVEL_TAGS[declared]
        start = rng.randrange(len(PYTHONS) - 2)
        pythons = ["39"] if project.abi3 else list(PYTHONS[start:start + rng.randint(3, 6)])
        for python in pythons:
            abi = "abi3" if project.abi3 else f"cp{python}"
            suffix = ".abi3.so" if project.abi3 else f".cpython-{python}-x86_64-linux-gnu.so"
            exts = tuple((f"{project.dist}/{name}{suffix}", c) for name, c in zip(names, chosen))
            yield WheelPlan(index, f"{project.dist}-{version}-cp{python}-{abi}-{tag}.whl", "linux",
                            project.dist, version, f"cp{python}", exts, grafted)
            index += 1
            if rng.random() < project.other_platforms:
                platform = rng.choice(OTHER_PLATFORMS)
                yield WheelPlan(index, f"{project.dist}-{version}-cp{python}-{abi}-{platform}.whl", "other",
                                project.dist, version, f"cp{python}")
                index += 1


# ---------------------------------------------------------------- writing wheels

_POOL: dict = {}


def _load_pool(pool_dir: str, seed: int) -> None:
    """Per writer process: the pool's bytes, grafted libraries deflated once (they recur as they are)."""
    pool = json.loads(Path(pool_dir, "pool.json").read_text())
    root = Path(pool_dir)
    _POOL["seed"] = seed
    _POOL["extensions"] = [(root / e["file"]).read_bytes() for e in pool["extensions"]]
    _POOL["ext_meta"] = pool["extensions"]
    _POOL["grafted"] = []
    for g in pool["grafted"]:
        data = (root / g["file"]).read_bytes()
        member = RawMember.of(g["soname"], data, mode=0o755)
        _POOL["grafted"].append((g["soname"], member, record_hash(data)))


def _python_files(plan: WheelPlan) -> dict[str, bytes]:
    body = f'"""{plan.dist} {plan.version}"""\n__version__ = "{plan.version}"\n'.encode()
    return {f"{plan.dist}/__init__.py": body, f"{plan.dist}/util.py": b"def helper():\n    return 42\n" * 20}


def _dist_info(plan: WheelPlan, rows: list[tuple[str, str, int]], pure: bool) -> list[RawMember]:
    info = f"{plan.dist}-{plan.version}.dist-info"
    tag = plan.filename.removesuffix(".whl").split("-", 2)[2]
    python, abi, platforms = tag.split("-")
    wheel = "Wheel-Version: 1.0\nGenerator: fastaudit-bench-mirror\n"
    wheel += f"Root-Is-Purelib: {'true' if pure else 'false'}\n"
    wheel += "".join(f"Tag: {python}-{abi}-{p}\n" for p in platforms.split("."))
    metadata = f"Metadata-Version: 2.1\nName: {plan.dist}\nVersion: {plan.version}\n"
    out = []
    for name, text in ((f"{info}/METADATA", metadata), (f"{info}/WHEEL", wheel)):
        data = text.encode()
        out.append(RawMember.of(name, data))
        rows.append((name, record_hash(data), len(data)))
    record = record_text(rows, f"{info}/RECORD")
    out.append(RawMember.of(f"{info}/RECORD", record))
    return out


def unique_id(seed: int, index: int, member: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{index}:{member}".encode(), digest_size=ID_BYTES // 2).hexdigest().encode()


def write_wheel(plan: WheelPlan, web: str) -> tuple[str, int, str]:
    members: list[RawMember] = []
    rows: list[tuple[str, str, int]] = []
    for name, data in _python_files(plan).items():
        members.append(RawMember.of(name, data))
        rows.append((name, record_hash(data), len(data)))
    runpath = f"$ORIGIN/../{plan.dist}.libs".encode().ljust(len(RUNPATH_SLOT), b"\0")
    for name, ext in plan.extensions:
        meta = _POOL["ext_meta"][ext]
        data = bytearray(_POOL["extensions"][ext])
        data[meta["id_offset"]:meta["id_offset"] + ID_BYTES] = unique_id(_POOL["seed"], plan.index, name)
        if meta["runpath_offset"] is not None:
            data[meta["runpath_offset"]:meta["runpath_offset"] + len(runpath)] = runpath
        content = bytes(data)
        members.append(RawMember.of(name, content, mode=0o755))
        rows.append((name, record_hash(content), len(content)))
    for g in plan.grafted:
        soname, member, digest = _POOL["grafted"][g]
        name = f"{plan.dist}.libs/{soname}"
        members.append(RawMember(name, member.compressed, member.method, member.crc, member.size,
                                 (S_IFREG | 0o755) << 16))
        rows.append((name, digest, member.size))
    members += _dist_info(plan, rows, pure=plan.kind == "pure")
    partial = Path(web).parent / "partial" / f"{os.getpid()}-{plan.filename}"  # outside web/: never scanned
    partial.parent.mkdir(parents=True, exist_ok=True)
    write_zip(partial, members, zip64=False)
    digest = hashlib.blake2b(partial.read_bytes(), digest_size=32).hexdigest()
    final = Path(web, "packages", digest[:2], digest[2:4], digest[4:], plan.filename)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, final)
    return plan.kind, final.stat().st_size, final.relative_to(Path(web).parent).as_posix()


def _write_chunk(plans: list[WheelPlan], web: str) -> list[tuple[str, int, str]]:
    return [write_wheel(plan, web) for plan in plans]


def write_wheels(out: Path, pool_dir: Path, seed: int, start: int, count: int, jobs: int) -> dict:
    """Write wheels start .. start+count-1 of the stream; counts and bytes per kind."""
    pool = json.loads((pool_dir / "pool.json").read_text())
    plans = []
    for plan in wheel_stream(pool, seed):
        if plan.index >= start + count:
            break
        if plan.index >= start:
            plans.append(plan)
    web = str(out / "web")
    chunks = [plans[i:i + 200] for i in range(0, len(plans), 200)]
    totals: dict[str, list[int]] = {}
    files = []
    with cf.ProcessPoolExecutor(max(1, jobs), initializer=_load_pool, initargs=(str(pool_dir), seed)) as pool_exec:
        for results in pool_exec.map(_write_chunk, chunks, [web] * len(chunks)):
            for kind, size, relative in results:
                entry = totals.setdefault(kind, [0, 0])
                entry[0] += 1
                entry[1] += size
                files.append(relative)
    batch_files(out, start).write_text("".join(f"{f}\n" for f in files))
    linux = [p for p in plans if p.kind == "linux"]
    return {"wheels": {k: v[0] for k, v in totals.items()}, "bytes": {k: v[1] for k, v in totals.items()},
            "elf_members": sum(len(p.extensions) + len(p.grafted) for p in linux),
            "grafted_members": sum(len(p.grafted) for p in linux)}


def batch_files(out: Path, start: int) -> Path:
    """The list of the files (relative to OUT) a batch starting at wheel `start` wrote."""
    return out / f"batch-{start:07d}.txt"


def read_manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text())


def truncate(out: Path, wheels: int) -> int:
    """Remove the batches written after the first `wheels` wheels (a bench run's "night", so the
    next run starts from the same mirror); returns how many files went."""
    manifest = read_manifest(out)
    kept = [b for b in manifest["batches"] if b["start"] + b["count"] <= wheels]
    if sum(b["count"] for b in kept) != wheels:
        raise SystemExit(f"{out}: {wheels} is not a batch boundary")
    removed = 0
    for batch in manifest["batches"][len(kept):]:
        listing = batch_files(out, batch["start"])
        for relative in listing.read_text().split():
            path = out / relative
            path.unlink()
            for folder in (path.parent, path.parent.parent, path.parent.parent.parent):
                if any(folder.iterdir()):
                    break
                folder.rmdir()
            removed += 1
        listing.unlink()
    manifest["batches"], manifest["wheels"] = kept, wheels
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return removed


def make(out: Path, *, wheels: int | None = None, add: int | None = None, seed: int = 11,
         jobs: int = os.cpu_count() or 1, pool_dir: Path | None = None) -> dict:
    """Create a mirror of `wheels` wheels, or add the next `add` wheels of its stream; what was done."""
    manifest_path = out / MANIFEST
    if add is not None:
        manifest = read_manifest(out)
        start, count = manifest["wheels"], add
    else:
        if manifest_path.exists():
            raise SystemExit(f"{out} already holds a mirror; use --add, or another folder")
        manifest = {"seed": seed, "wheels": 0, "batches": [], "pool": str((pool_dir or out / "pool").resolve())}
        start, count = 0, wheels or 0
    seed = manifest["seed"]
    pool_dir = Path(manifest["pool"])  # a night is built from the mirror's own pool, not a new one
    started = time.monotonic()
    pool = build_pool(pool_dir, seed, jobs)
    pool_seconds = time.monotonic() - started
    started = time.monotonic()
    written = write_wheels(out, pool_dir, seed, start, count, jobs)
    seconds = time.monotonic() - started
    manifest["wheels"] = start + count
    batch = {"start": start, "count": count, "write_seconds": round(seconds, 1),
             "pool_seconds": round(pool_seconds, 1), "pool_build_seconds": pool["build_seconds"],
             "wheels_per_second": round(count / seconds, 1),
             "mean_wheel_kb": round(sum(written["bytes"].values()) / max(count, 1) / 1024, 1), **written}
    manifest["batches"].append(batch)
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--wheels", type=int, default=100_000, help="size of a new mirror")
    parser.add_argument("--add", type=int, help="add the next ADD wheels of the stream to an existing mirror")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pool", type=Path, help="where the gcc-built pool lives (default OUT/pool)")
    parser.add_argument("--truncate", type=int, metavar="N", help="remove the wheels added after the first N")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    if args.truncate is not None:
        print(json.dumps({"removed": truncate(args.out, args.truncate)}))
        return 0
    print(json.dumps(make(args.out, wheels=args.wheels, add=args.add, seed=args.seed, jobs=args.jobs,
                          pool_dir=args.pool)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
