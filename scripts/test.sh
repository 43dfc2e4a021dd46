#!/usr/bin/env bash
# Installs what the build needs, then runs the CI jobs (what .ci/run runs), each in its own build
# folder, all through ccache:
#   test    Release build, the CPU test suite (tests labelled `cpu`); CUDA code and GPU tests are
#           compiled wherever the toolkit is installed (CI has no GPU: GPU tests carry label `gpu`)
#   asan    the same CPU suite under ASan + UBSan + LSan (clang, -O1; build-asan)
#   fuzz    every libFuzzer target of fuzz/ for 30 s on the asan build (scripts/fuzz.sh)
#   arm64   ARM64 cross build (cmake/aarch64-linux-gnu.cmake) of the CPU kernels, models and file
#           formats, and their tests under qemu-user
# WANRT_CI_JOBS picks jobs (default: all four; docs/reliability.md "CI cost" has their times on 2
# cores); each prints its time, and a failing job fails the script after the others ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
JOBS=${WANRT_CI_JOBS:-test asan fuzz arm64}
NPROC=$(nproc)
export CCACHE_BASEDIR=$PWD

job_test() {
  local build=${BUILD:-build} cuda=OFF
  [ -x /usr/local/cuda/bin/nvcc ] && cuda=ON
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWANRT_TESTS=ON -DWANRT_CUDA=$cuda -DWANRT_PYTHON=ON
  cmake --build "$build" -j "$NPROC"
  ctest --test-dir "$build" -L cpu --output-on-failure -j "$NPROC"
}

# Sanitizer build: clang (the fuzz job reuses it), -O1 to keep the build and the suite fast; only
# the parsers get the fuzzer's coverage instrumentation (fuzz/CMakeLists.txt).
# lld: the 50-odd test executables each link the whole ASan library; GNU ld is the slow part of a
# warm-cache build.
configure_asan() {
  cmake -S . -B build-asan -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld \
        -DWANRT_TESTS=ON -DWANRT_FUZZ=ON -DWANRT_CUDA=OFF
}
job_asan() {
  configure_asan
  cmake --build build-asan -j "$NPROC" --target wanrt $(cd tests && ls test_*.cpp | grep -v _gpu | sed 's/\.cpp$//')
  # LSan is on with ASan; suppressions: tests/sanitizer/lsan.supp (each entry says why).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0 \
  LSAN_OPTIONS=suppressions=$PWD/tests/sanitizer/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan -L cpu --output-on-failure -j "$NPROC" --timeout 1500
}
job_fuzz() {
  configure_asan
  BUILD=build-asan FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash scripts/fuzz.sh
}
job_arm64() {
  cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
        -DCMAKE_BUILD_TYPE=Release -DWANRT_TOKENIZER=OFF -DWANRT_FFMPEG=OFF -DWANRT_TESTS=ON
  cmake --build build-arm64 -j "$NPROC"
  # Every test the ARM build has (kernels, op table, models, file formats, schedulers, thread pool)
  # under qemu-user on the multiarch runtime (cmake/aarch64-linux-gnu.cmake: the cross loader with
  # Debian's newer arm64 libc was what hung). Time-bounded twice: each test at most 300 s, the whole
  # run WANRT_ARM64_BUDGET seconds (a hang fails the job instead of eating the CI's 40 minutes).
  # WANRT_ARM64_TESTS narrows it (a ctest -R regex). This build has no FFmpeg: the Video tests check
  # that .mp4/.png are refused in one line there.
  timeout --kill-after=30 "${WANRT_ARM64_BUDGET:-900}" \
    ctest --test-dir build-arm64 -L cpu --output-on-failure --no-tests=error -j "$NPROC" --timeout 300 ${WANRT_ARM64_TESTS:+-R "$WANRT_ARM64_TESTS"}

}

failed=()
summary=()
for j in $JOBS; do
  echo "[ci] === $j ==="
  t0=$(date +%s)
  # Not `job || rc=$?`: errexit is off inside anything left of `||`, so a failed build would fall
  # through to ctest running stale binaries. A subshell outside an AND-OR list keeps -e.
  set +e
  ( set -e; "job_${j//-/_}" )
  rc=$?
  set -e
  t=$(( $(date +%s) - t0 ))
  summary+=("$(printf '%-6s %5d s  %s' "$j" "$t" "$([ $rc = 0 ] && echo ok || echo FAILED)")")
  [ $rc = 0 ] || failed+=("$j")
done
echo "[ci] jobs on $NPROC cores:"
printf '[ci]   %s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ] || { echo "[ci] failed: ${failed[*]}" >&2; exit 1; }
