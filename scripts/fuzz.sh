#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ (fuzz/README.md) on the sanitizer build.
#
#   bash scripts/fuzz.sh                 CI mode: every target for FUZZ_SECONDS (30) seconds
#   bash scripts/fuzz.sh --long          documented long run: FUZZ_RUNS (10,000,000) execs per target,
#                                        FUZZ_PARALLEL (nproc) targets at a time
#   bash scripts/fuzz.sh [--long] fuzz_pth fuzz_gguf      only these targets
#
# BUILD (default build-asan) is configured as the asan CI job configures it (clang, -O1, ASan +
# UBSan, WANRT_FUZZ=ON) when it does not exist yet. Corpora grow in $BUILD/fuzz-corpus/<target>
# (the committed seeds of fuzz/seeds/<target> are read, never written); a crash, a leak, an
# uncaught exception, an allocation over 2 GB or an input running over 30 s leaves its input in
# $BUILD/fuzz-crashes/ and makes the script exit 1. One summary line per target: execs, execs/s,
# corpus size, crashes.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-asan}
LONG=0
if [ "${1:-}" = "--long" ]; then LONG=1; shift; fi
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_safetensors fuzz_safetensors_index fuzz_pth fuzz_gguf fuzz_config
                                     fuzz_tokenizer fuzz_weights fuzz_y4m fuzz_upload)

if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DWANRT_TESTS=ON -DWANRT_FUZZ=ON -DWANRT_CUDA=OFF
fi
cmake --build "$BUILD" -j "$(nproc)" --target "${TARGETS[@]}"

dict_of() {
  case "$1" in
    fuzz_pth) echo fuzz/pickle.dict ;;
    fuzz_y4m) echo fuzz/y4m.dict ;;
    fuzz_upload) echo fuzz/upload.dict ;;
    fuzz_safetensors|fuzz_safetensors_index|fuzz_config|fuzz_weights) echo fuzz/json.dict ;;
    *) echo "" ;;
  esac
}

# Leaks are findings (LSan runs at exit of each input batch); an uncaught exception aborts.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$BUILD/fuzz-crashes" "$BUILD/fuzz-logs"

run_one() {
  local t=$1 dict seeds corpus log
  dict=$(dict_of "$t")
  seeds=fuzz/seeds/${t#fuzz_}
  corpus=$BUILD/fuzz-corpus/$t
  log=$BUILD/fuzz-logs/$t.log
  mkdir -p "$corpus"
  local args=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=30 -max_len=65536 -print_final_stats=1
              "-artifact_prefix=$BUILD/fuzz-crashes/$t-")
  [ -n "$dict" ] && args+=("-dict=$dict")
  if [ "$LONG" = 1 ]; then args+=("-runs=${FUZZ_RUNS:-10000000}"); else args+=("-max_total_time=${FUZZ_SECONDS:-30}"); fi
  local rc=0
  "$BUILD/fuzz/$t" "${args[@]}" "$corpus" "$seeds" >"$log" 2>&1 || rc=$?
  local execs speed units
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(find "$corpus" -type f | wc -l)
  if [ "$rc" = 0 ]; then
    printf '[fuzz] %-24s %10s execs %7s/s  corpus %5s  no crash\n' "$t" "${execs:-?}" "${speed:-?}" "$units"
  else
    printf '[fuzz] %-24s %10s execs %7s/s  corpus %5s  CRASH (exit %s): %s\n' "$t" "${execs:-?}" "${speed:-?}" "$units" "$rc" \
           "$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|terminate called|SUMMARY' "$log" || echo "see $log")"
    echo "[fuzz]   input: $(sed -n 's/.*Test unit written to //p' "$log" | tail -1)   log: $log"
    return 1
  fi
}

if [ "$LONG" = 1 ]; then
  export -f run_one dict_of
  export BUILD LONG
  printf '%s\n' "${TARGETS[@]}" | xargs -P "${FUZZ_PARALLEL:-$(nproc)}" -I{} bash -c 'run_one {}'
else
  fail=0
  for t in "${TARGETS[@]}"; do run_one "$t" || fail=1; done
  exit $fail
fi
