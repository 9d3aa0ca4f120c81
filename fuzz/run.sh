#!/usr/bin/env bash
# Fuzz the ELF reader (or, with FUZZ_TARGET=rewrite, the rewriter) on the AddressSanitizer + UBSan
# debug build.
#
#   fuzz/run.sh [SECONDS] [libFuzzer flags...]   fuzz for SECONDS (default 60)
#   FUZZ_TARGET=rewrite fuzz/run.sh ...          the same for fuzz/fuzz_rewrite.py
#   fuzz/run.sh --repro FILE...                  run the harness once on each FILE
#   fuzz/run.sh --repro -minimize_crash=1 -runs=100000 CRASH   shrink a crashing input
#
# The debug build lives outside the repo so it never touches the in-place release build:
#   FUZZ_BUILD_DIR (default /tmp/fuzzbuild)  copy of the work tree, built with FASTAUDIT_DEBUG_BUILD=1
#   FUZZ_VENV      (default /tmp/fuzzvenv)   venv holding that build, numpy, click, deflate, atheris
#   FUZZ_WORK      (default /tmp/fuzzwork)   grown corpus, crash artifacts and the log
#   FUZZ_REBUILD=1                           rebuild the extension even if the venv has one
# New crashes land in $FUZZ_WORK/artifacts/; minimise one and copy it to tests/data/elf-crashes/.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${FUZZ_BUILD_DIR:-/tmp/fuzzbuild}
venv=${FUZZ_VENV:-/tmp/fuzzvenv}
work=${FUZZ_WORK:-/tmp/fuzzwork}
py=$venv/bin/python
shim=$venv/lib/libfuzzcovshim.so

installed_ext() {
    "$py" - <<'EOF' 2>/dev/null
import importlib.util
spec = importlib.util.find_spec("fastaudit")
if spec and spec.submodule_search_locations:
    import glob, os
    print(next(iter(glob.glob(os.path.join(spec.submodule_search_locations[0], "_elf*.so"))), ""))
EOF
}

build() {
    if [[ ! -x $py ]]; then
        python3 -m venv "$venv"
    fi
    "$py" -m pip install -q --upgrade pip >/dev/null
    "$py" -m pip install -q --upgrade numpy cython "setuptools>=77" wheel click deflate atheris
    # a copy of the work tree (tracked and untracked, not ignored), so uncommitted changes are fuzzed
    rm -rf "$build_dir"
    mkdir -p "$build_dir"
    (cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$build_dir"
    # no stale generated C: cythonize only looks at timestamps, not at the boundscheck directive
    rm -rf "$build_dir/build" "$build_dir"/src/fastaudit/_elf*.c "$build_dir"/src/fastaudit/_elf*.so
    # trace-pc/trace-cmp: gcc's only coverage hooks, fed to libFuzzer by the shim below
    # a failed build must stop here: an extension installed by an earlier run would be fuzzed instead
    if ! CFLAGS="-fsanitize-coverage=trace-pc,trace-cmp" FASTAUDIT_DEBUG_BUILD=1 \
        "$py" -m pip install -q --no-build-isolation --no-deps --force-reinstall "$build_dir" >"$venv/build.log" 2>&1; then
        cat "$venv/build.log" >&2
        echo "run.sh: the debug build failed" >&2
        exit 2
    fi
    gcc -shared -fPIC -O2 -o "$shim" -x c - -ldl <<'SHIM'
/* Forward the coverage callbacks to atheris's libFuzzer: gcc's libasan exports no-op weak copies
   of them, and atheris looks them up globally, so without this Python coverage goes to libasan. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static int find_core(struct dl_phdr_info *info, size_t size, void *out) {
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "/atheris/core_with_libfuzzer")) {
        *(const char **)out = info->dlpi_name;
        return 1;
    }
    return 0;
}

static void *core_symbol(const char *name) {
    static void *core;
    if (!core) {
        const char *path = NULL;
        dl_iterate_phdr(find_core, &path);
        if (path) core = dlopen(path, RTLD_NOLOAD | RTLD_LAZY);
    }
    return core ? dlsym(core, name) : NULL;
}

#define FORWARD2(NAME, T1, T2)                                          \
    void NAME(T1 a, T2 b) {                                             \
        static void (*fn)(T1, T2);                                      \
        if (!fn) fn = (void (*)(T1, T2))core_symbol(#NAME);             \
        if (fn) fn(a, b);                                               \
    }
#define FORWARD1(NAME, T1)                                              \
    void NAME(T1 a) {                                                   \
        static void (*fn)(T1);                                          \
        if (!fn) fn = (void (*)(T1))core_symbol(#NAME);                 \
        if (fn) fn(a);                                                  \
    }

FORWARD2(__sanitizer_cov_8bit_counters_init, uint8_t *, uint8_t *)
FORWARD2(__sanitizer_cov_pcs_init, const uintptr_t *, const uintptr_t *)
FORWARD2(__sanitizer_cov_trace_cmp1, uint8_t, uint8_t)
FORWARD2(__sanitizer_cov_trace_cmp2, uint16_t, uint16_t)
FORWARD2(__sanitizer_cov_trace_cmp4, uint32_t, uint32_t)
FORWARD2(__sanitizer_cov_trace_cmp8, uint64_t, uint64_t)
FORWARD2(__sanitizer_cov_trace_const_cmp1, uint8_t, uint8_t)
FORWARD2(__sanitizer_cov_trace_const_cmp2, uint16_t, uint16_t)
FORWARD2(__sanitizer_cov_trace_const_cmp4, uint32_t, uint32_t)
FORWARD2(__sanitizer_cov_trace_const_cmp8, uint64_t, uint64_t)
FORWARD2(__sanitizer_cov_trace_switch, uint64_t, uint64_t *)
FORWARD1(__sanitizer_cov_trace_div4, uint32_t)
FORWARD1(__sanitizer_cov_trace_div8, uint64_t)
FORWARD1(__sanitizer_cov_trace_gep, uintptr_t)
FORWARD1(__sanitizer_cov_trace_pc_indir, uintptr_t)

/* gcc's trace-cmp also reports float compares, which libFuzzer has no use for */
void __sanitizer_cov_trace_cmpf(float a, float b) { (void)a; (void)b; }
void __sanitizer_cov_trace_cmpd(double a, double b) { (void)a; (void)b; }

/* gcc has only -fsanitize-coverage=trace-pc (no inline 8-bit counters): hash each caller PC into a
   table of counters registered with libFuzzer as one more module, so the C extension's edges count. */
enum { NATIVE_SLOTS = 1 << 16 };
static uint8_t native_counters[NATIVE_SLOTS];
static uintptr_t native_pcs[2 * NATIVE_SLOTS];
static int native_state; /* 0 unregistered, 1 registered, -1 libFuzzer not loaded yet */

static void register_native(void) {
    void (*counters_init)(uint8_t *, uint8_t *) =
        (void (*)(uint8_t *, uint8_t *))core_symbol("__sanitizer_cov_8bit_counters_init");
    void (*pcs_init)(const uintptr_t *, const uintptr_t *) =
        (void (*)(const uintptr_t *, const uintptr_t *))core_symbol("__sanitizer_cov_pcs_init");
    if (!counters_init || !pcs_init) {
        native_state = -1;
        return;
    }
    for (size_t i = 0; i < NATIVE_SLOTS; i++) {
        native_pcs[2 * i] = 0x7f0000000000u + i; /* a stand-in PC per slot; flags 0 */
        native_pcs[2 * i + 1] = 0;
    }
    counters_init(native_counters, native_counters + NATIVE_SLOTS);
    pcs_init(native_pcs, native_pcs + 2 * NATIVE_SLOTS);
    native_state = 1;
}

void __sanitizer_cov_trace_pc(void) {
    uintptr_t pc = (uintptr_t)__builtin_return_address(0);
    if (native_state != 1) {
        register_native();
        if (native_state != 1) return;
    }
    uint32_t h = (uint32_t)(pc ^ (pc >> 17)) * 2654435761u;
    native_counters[h >> 16]++;
}
SHIM
    local so
    so=$(installed_ext)
    if ! ldd "$so" | grep libasan >/dev/null; then
        echo "run.sh: $so is not linked against libasan; the debug build did not take" >&2
        exit 2
    fi
}

so=$(installed_ext || true)
if [[ ${FUZZ_REBUILD:-0} == 1 || -z $so || ! -e $shim ]] || ! ldd "$so" 2>/dev/null | grep libasan >/dev/null; then
    echo "run.sh: building the debug extension in $build_dir (venv $venv)" >&2
    build
    so=$(installed_ext)
fi

libasan=$(gcc -print-file-name=libasan.so)
if [[ ! -e $libasan ]]; then
    echo "run.sh: gcc has no libasan.so" >&2
    exit 2
fi
# the shim goes first so atheris's coverage lookups find libFuzzer, not libasan's no-op stubs; it
# defines no function ASan intercepts, so ASan need not be first (verify_asan_link_order=0)
export LD_PRELOAD="$shim $libasan"
export ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:symbolize=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
export PYTHONPATH=  # the harness must import the debug build from the venv, never src/
export PATH="$venv/bin:$PATH"  # libFuzzer re-runs the harness by path (-minimize_crash), via env python3
target=${FUZZ_TARGET:-elf}
harness=$repo/fuzz/fuzz_$target.py
seeds=$repo/fuzz/corpus/$target

if [[ ${1:-} == --repro ]]; then
    shift
    status=0
    "$py" "$harness" -runs=1 "$@" || status=$?
    echo "exit status: $status"
    exit "$status"
fi

seconds=${1:-60}
shift || true
grown=$work/corpus-$target
mkdir -p "$grown" "$work/artifacts"
log=$work/fuzz-$(date +%Y%m%d-%H%M%S).log
echo "run.sh: extension $so" >&2
echo "run.sh: fuzzing for ${seconds}s; log $log; artifacts $work/artifacts/" >&2

status=0
# the first corpus dir receives new inputs; the committed seeds are only read
"$py" "$harness" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=32768 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$@" "$grown" "$seeds" >"$log" 2>&1 || status=$?

tail -n 25 "$log"
runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1 || true)
rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1 || true)
echo "executions: ${runs:-unknown}"
echo "exec/s: ${rate:-unknown}"
echo "corpus: $(find "$grown" -type f | wc -l) grown inputs + $(find "$seeds" -type f | wc -l) seeds"
echo "crashes: $(find "$work/artifacts" -type f | wc -l) file(s) in $work/artifacts/"
echo "exit status: $status"
exit "$status"
