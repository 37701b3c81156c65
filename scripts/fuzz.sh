#!/usr/bin/env bash
# libFuzzer over the frame decoder and the selector parser (docs/testing.md, "Fuzzing").
#   scripts/fuzz.sh [SECONDS]     run fuzz_frame, then fuzz_selector, SECONDS each (default 30)
# Builds only the fuzz targets, with clang++ and -fsanitize=fuzzer,address,undefined, in
# build-fuzz/. Each run starts from the generated seeds (build-fuzz/seeds/) plus what earlier runs
# on this machine kept (build-fuzz/corpus/TARGET/, grown in place). Exits non-zero on any crash,
# sanitizer report, invariant failure, timeout (-timeout=10) or out-of-memory (-rss_limit_mb=2048),
# printing the report and the path of the input that caused it (build-fuzz/artifacts/).
#
# Environment:
#   SHMBUS_FUZZ_ALLOW_SKIP=1   without clang++ or the libFuzzer runtime, say so and exit 0 (ignored
#                              when CI is set: CI must fuzz; scripts/setup.sh installs both)
#   SHMBUS_FUZZ_TARGETS="..."  a subset (default "fuzz_frame fuzz_selector")
#   SHMBUS_FUZZ_ARGS="..."     more libFuzzer flags, e.g. "-fork=2" or "-max_len=65600"
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${1:-30}"
BUILD=build-fuzz
read -r -a TARGETS <<<"${SHMBUS_FUZZ_TARGETS:-fuzz_frame fuzz_selector}"
read -r -a EXTRA <<<"${SHMBUS_FUZZ_ARGS:-}"

# --- toolchain ------------------------------------------------------------------------------------
skip_or_fail() {
  echo "fuzz: $1" >&2
  echo "fuzz: install them with: apt-get install clang libclang-rt-dev (scripts/setup.sh does)" >&2
  if [ -z "${CI:-}" ] && [ "${SHMBUS_FUZZ_ALLOW_SKIP:-0}" = 1 ]; then
    echo "fuzz: SKIPPED (SHMBUS_FUZZ_ALLOW_SKIP=1)" >&2
    exit 0
  fi
  exit 1
}
command -v clang++ >/dev/null 2>&1 || skip_or_fail "clang++ not found"
probe_dir="$(mktemp -d)"
trap 'rm -rf "$probe_dir"' EXIT
printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }\n' \
  >"$probe_dir/probe.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe_dir/probe.cpp" -o "$probe_dir/probe" >"$probe_dir/log" 2>&1; then
  cat "$probe_dir/log" >&2
  skip_or_fail "clang++ cannot link -fsanitize=fuzzer,address,undefined (is the libFuzzer runtime, libclang_rt.fuzzer, installed?)"
fi

# --- build ----------------------------------------------------------------------------------------
mkdir -p "$BUILD"
LOG="$BUILD/build.log"
echo "fuzz: building ${TARGETS[*]} with $(clang++ --version | head -n1) in $BUILD (log: $LOG)" >&2
if ! { CXX=clang++ cmake -S . -B "$BUILD" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DSHMBUS_FUZZ=ON -DSHMBUS_BUILD_TESTS=OFF -DSHMBUS_BUILD_BENCH=OFF -DSHMBUS_SANITIZE= &&
       cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}" fuzz_seed_corpus; } >"$LOG" 2>&1; then
  cat "$LOG" >&2
  echo "fuzz: build failed (log above, also in $LOG)" >&2
  exit 1
fi

# --- seeds ----------------------------------------------------------------------------------------
SEEDS="$BUILD/seeds"
rm -rf "$SEEDS"
mkdir -p "$SEEDS/frame" "$SEEDS/selector" "$BUILD/artifacts"
"$BUILD/tests/fuzz/fuzz_seed_corpus" "$SEEDS/frame" "$SEEDS/selector"

# --- run ------------------------------------------------------------------------------------------
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
for t in "${TARGETS[@]}"; do
  case "$t" in
    fuzz_frame) kind=frame ;;
    fuzz_selector) kind=selector ;;
    *) echo "fuzz: unknown target $t" >&2; exit 2 ;;
  esac
  corpus="$BUILD/corpus/$t"
  mkdir -p "$corpus"
  run_log="$BUILD/$t.log"
  echo "== fuzz: $t for ${SECS} s (corpus $corpus + seeds $SEEDS/$kind + tests/fuzz/regressions/$kind; log $run_log)"
  set +e
  "$BUILD/tests/fuzz/$t" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -dict="tests/fuzz/$kind.dict" -artifact_prefix="$BUILD/artifacts/$t-" "${EXTRA[@]}" \
    "$corpus" "$SEEDS/$kind" "tests/fuzz/regressions/$kind" >"$run_log" 2>&1
  rc=$?
  set -e
  # The last status line ("#N DONE cov: ... ft: ... corp: ... exec/s: ...") and the final stats.
  grep -E '^#[0-9]+(:|[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED))' "$run_log" | tail -n1 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$run_log" || true
  if [ $rc -ne 0 ]; then
    echo "fuzz: $t FAILED (exit $rc); the report:" >&2
    # From the first report line (sanitizer, invariant, libFuzzer deadly signal/timeout/oom) on.
    awk 'f || /ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|libFuzzer|LeakSanitizer)|runtime error:|invariant failed|ALARM: working on the last Unit|==[0-9]+== ERROR|Selector::parse threw|LIKE disagrees/ {f=1} f' \
      "$run_log" | head -n 120 >&2
    grep -E 'Test unit written to|artifact_prefix' "$run_log" >&2 || true
    echo "fuzz: reproduce with: $BUILD/tests/fuzz/$t <the file above>" >&2
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $BUILD/artifacts/)" >&2
  exit 1
fi
echo "fuzz: no crash in ${TARGETS[*]} (${SECS} s each)"
