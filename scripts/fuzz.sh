#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ (fuzz/README.md) on the sanitizer build.
#
#   bash scripts/fuzz.sh                 CI mode: every target for FUZZ_SECONDS (30) seconds,
#                                        FUZZ_PARALLEL (nproc) targets at a time
#   bash scripts/fuzz.sh --long          documented long run: FUZZ_RUNS (10,000,000) execs per target,
#                                        FUZZ_PARALLEL (nproc) targets at a time
#   bash scripts/fuzz.sh [--long] fuzz_pth fuzz_gguf      only these targets
#   bash scripts/fuzz.sh stage           builds the targets here and packs them for a machine without
#                                        compilers or Debian's libraries: .devcarry/fuzz.tar.xz (binaries
#                                        without debug info, their non-libc shared libraries, seeds,
#                                        dictionaries, this script); `STAGE_FUZZ=1 scripts/device_gpu.sh
#                                        stage` runs it
#   bash scripts/fuzz.sh run-staged [SECONDS]   on that machine (device step `fuzz-long`): unpacks it
#                                        and runs every target at once, FUZZ_WORKERS processes each
#                                        (default: nproc / targets, rounded up) sharing the target's
#                                        corpus, for SECONDS (default 480); writes $OUT/fuzz/summary.txt
#                                        (one table: execs per target summed over workers, this run and
#                                        all runs so far, crashes), results.tar.gz (logs, crash inputs),
#                                        corpus.tar.gz. A corpus.tar.gz of an earlier run copied to
#                                        .devcarry/fuzz-corpus.tar.gz is resumed (its corpora and its
#                                        exec totals), so runs of 10 minutes add up to the long run.
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
ALL_TARGETS=(fuzz_safetensors fuzz_safetensors_index fuzz_pth fuzz_gguf fuzz_config fuzz_tokenizer fuzz_weights fuzz_y4m fuzz_upload fuzz_lora)

if [ "${1:-}" = "stage" ]; then
  [ -f "$BUILD/build.ninja" ] || { echo "stage: configure $BUILD first (bash scripts/fuzz.sh fuzz_pth does)" >&2; exit 1; }
  # FUZZ_TARGETS picks a subset (run-staged runs whatever bin/ holds, with all the machine's cores).
  # Measured: all 9 targets pack to 93 MB of xz (7 min), 3 targets to 67 MB: the shared libraries
  # dominate (FFmpeg's codec chain: x265, codec2, aom, rsvg, ICU data; OpenBLAS 37 MB), and a device
  # run carries at most 64 MiB with the 28 MB working tree. Not solved yet: the FFmpeg stubs of
  # scripts/device_gpu.sh stage would drop the codec chain.
  read -r -a STAGE_TARGETS <<< "${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"
  cmake --build "$BUILD" -j "$(nproc)" --target "${STAGE_TARGETS[@]}"
  st=.devcarry/fuzz
  rm -rf "$st" .devcarry/fuzz.tar.xz && mkdir -p "$st/bin" "$st/lib"
  for t in "${STAGE_TARGETS[@]}"; do
    cp "$BUILD/fuzz/$t" "$st/bin/" && strip --strip-debug "$st/bin/$t"
  done
  # The sanitizer runtimes are linked in statically (clang's default); the rest that is not libc
  # comes along: OpenBLAS, gfortran, quadmath, sentencepiece, and libstdc++ / libgcc_s (GCC 12's
  # libstdc++ may be newer than the machine's).
  ldd "$st"/bin/* | awk '/=> \// {print $3}' | sort -u \
    | grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' | while read -r l; do cp -L "$l" "$st/lib/"; done
  cp -r fuzz/seeds "$st/seeds" && cp fuzz/*.dict scripts/fuzz.sh "$st/"
  tar cJf .devcarry/fuzz.tar.xz -C .devcarry fuzz && rm -rf "$st"
  du -h .devcarry/fuzz.tar.xz
  exit 0
fi

if [ "${1:-}" = "run-staged" ]; then
  SECONDS_EACH=${2:-480}
  OUTD=${OUT:-$PWD/out}/fuzz
  work=${TMPDIR:-/tmp}/wanrt-fuzz-staged
  # Logs and crash inputs collect in $work and come back as one archive (the device tool returns
  # few files): $OUTD holds summary.txt, results.tar.gz (logs/, crashes/) and corpus.tar.gz.
  rm -rf "$work" && mkdir -p "$work/crashes" "$work/logs" "$work/corpus" "$OUTD"
  # No xz-capable tar is assumed there: Python's tarfile reads both archives.
  untar() { python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$1" "$2"; }
  untar .devcarry/fuzz.tar.xz "$work"
  # Resuming: the corpora and the exec totals (corpus/totals.txt, "target execs") of earlier runs.
  if [ -f .devcarry/fuzz-corpus.tar.gz ]; then untar .devcarry/fuzz-corpus.tar.gz "$work"; fi
  touch "$work/corpus/totals.txt"
  st=$work/fuzz
  chmod +x "$st"/bin/*
  # The staged subset (FUZZ_TARGETS at stage time).
  ALL_TARGETS=()
  for b in "$st"/bin/fuzz_*; do ALL_TARGETS+=("$(basename "$b")"); done
  export LD_LIBRARY_PATH=$st/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  missing=$(ldd "$st"/bin/* | grep "not found" | sort -u || true)
  [ -z "$missing" ] || { echo "run-staged: libraries missing: $missing" >&2; exit 1; }
  # No llvm-symbolizer there: reports carry addresses; replay the saved input on the dev machine.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=0:symbolize=0
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:symbolize=0
  # Every core busy: 16 cores and 9 targets give 2 workers each (18 processes).
  workers=${FUZZ_WORKERS:-$(( ($(nproc) + ${#ALL_TARGETS[@]} - 1) / ${#ALL_TARGETS[@]} ))}
  echo "[fuzz] ${#ALL_TARGETS[@]} targets x $workers workers, ${SECONDS_EACH} s, $(nproc) cores, $(date -u)" | tee "$OUTD/summary.txt"
  end=$(( $(date +%s) + SECONDS_EACH ))
  # One worker: libFuzzer until the wall time is spent. A crash ends a libFuzzer process, so the
  # worker starts it again (same corpus, the crash input kept) and the other inputs keep being
  # tried. Each pass appends its exec count to <log>.execs: the final stats line, or after a crash
  # the last "#N" status line.
  worker() {
    local t=$1 w=$2 pass=0 left log
    shift 2
    while left=$(( end - $(date +%s) )); [ "$left" -gt 5 ]; do
      pass=$(( pass + 1 ))
      log=$work/logs/$t.w$w.p$pass.log
      # No -seed: libFuzzer draws one from the time and pid, so workers and resumed runs differ.
      "$st/bin/$t" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=30 -max_len=65536 -print_final_stats=1 \
        -max_total_time="$left" "$@" -artifact_prefix="$work/crashes/$t-w$w-p$pass-" \
        "$work/corpus/$t" "$st/seeds/${t#fuzz_}" > "$log" 2>&1 || true
      local e
      e=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
      [ -n "$e" ] || e=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
      echo "${e:-0}" >> "$work/logs/$t.execs"
    done
  }
  pids=()
  rm -f "$work/totals.new"
  for t in "${ALL_TARGETS[@]}"; do
    mkdir -p "$work/corpus/$t"
    dict=()
    case $t in
      fuzz_pth) dict=(-dict="$st/pickle.dict") ;;
      fuzz_y4m) dict=(-dict="$st/y4m.dict") ;;
      fuzz_upload) dict=(-dict="$st/upload.dict") ;;
      fuzz_safetensors|fuzz_safetensors_index|fuzz_config|fuzz_weights|fuzz_lora) dict=(-dict="$st/json.dict") ;;
    esac
    # Workers of one target share its corpus folder (libFuzzer rereads it); -fork would hide the
    # exec counts.
    for w in $(seq 1 "$workers"); do worker "$t" "$w" "${dict[@]}" & pids+=($!); done
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  fail=0
  {
    printf '[fuzz] %-24s %13s %9s %15s %8s %8s\n' target "execs (run)" "execs/s" "execs (all runs)" corpus crashes
    for t in "${ALL_TARGETS[@]}"; do
      execs=$(awk '{s += $1} END {print s + 0}' "$work/logs/$t.execs" 2>/dev/null || echo 0)
      before=$(awk -v t="$t" '$1 == t {print $2}' "$work/corpus/totals.txt")
      total=$(( ${before:-0} + execs ))
      crashes=$(find "$work/crashes" -name "$t-*" -type f | wc -l)
      printf '[fuzz] %-24s %13d %9d %15d %8d %8d\n' "$t" "$execs" $(( execs / SECONDS_EACH )) "$total" \
        "$(find "$work/corpus/$t" -type f | wc -l)" "$crashes"
      echo "$t $total" >> "$work/totals.new"
    done
    find "$work/crashes" -type f -printf '[fuzz] crash input: %f\n'
  } | tee -a "$OUTD/summary.txt"
  mv "$work/totals.new" "$work/corpus/totals.txt"
  [ -z "$(ls -A "$work/crashes")" ] || fail=1
  # The corpora seed the next run (and the CI seeds, after minimising with -merge=1).
  tar czf "$OUTD/corpus.tar.gz" -C "$work" corpus
  tar czf "$OUTD/results.tar.gz" -C "$work" logs crashes
  exit $fail
fi

LONG=0
if [ "${1:-}" = "--long" ]; then LONG=1; shift; fi
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")

if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld \
        -DWANRT_TESTS=ON -DWANRT_FUZZ=ON -DWANRT_CUDA=OFF
fi
cmake --build "$BUILD" -j "$(nproc)" --target "${TARGETS[@]}"

dict_of() {
  case "$1" in
    fuzz_pth) echo fuzz/pickle.dict ;;
    fuzz_y4m) echo fuzz/y4m.dict ;;
    fuzz_upload) echo fuzz/upload.dict ;;
    fuzz_safetensors|fuzz_safetensors_index|fuzz_config|fuzz_weights|fuzz_lora) echo fuzz/json.dict ;;
    *) echo "" ;;
  esac
}

# Leaks are findings (LSan runs at exit of each input batch); an uncaught exception aborts.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$BUILD/fuzz-crashes" "$BUILD/fuzz-logs"
# The targets write each input to a file under $TMPDIR and open it as the loaders open checkpoints;
# on a tmpfs that write is a memory copy: fuzz_safetensors ran 2.6x the execs with /dev/shm as with
# a disk-backed /tmp (session 14). FUZZ_TMPDIR overrides.
if [ -n "${FUZZ_TMPDIR:-}" ]; then export TMPDIR=$FUZZ_TMPDIR
elif [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

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

# FUZZ_PARALLEL targets at a time (default: one per core): the 30-second CI runs of 9 targets take
# 5 periods of 30 s on 2 cores instead of 9.
export -f run_one dict_of
export BUILD LONG
printf '%s\n' "${TARGETS[@]}" | xargs -P "${FUZZ_PARALLEL:-$(nproc)}" -I{} bash -c 'run_one {}'
