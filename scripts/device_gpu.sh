#!/usr/bin/env bash
# The one command run on the GPU machine (the `run` device tool): GPU tests and benchmarks of the
# CUDA backend, logs under $OUT (at most 8 files come back: summary.txt plus one log per step).
#
# The GPU image has CUDA 13, cuDNN 9 and cuBLASLt but not the Debian dev packages wanrt links
# (OpenBLAS, sentencepiece, ffmpeg, gtest), so binaries are built on the dev machine with
#   cmake -S . -B build-cuda -G Ninja -DWANRT_CUDA=ON && ninja -C build-cuda wanrt test_cuda_ops_gpu ...
# and staged by `scripts/device_gpu.sh stage` into .devcarry/ (bin/ + libs.tar.xz with the host
# libraries the CLI needs, fixtures/ with the fixtures the GPU tests read that are not in
# tests/fixtures, copied from ../shared/fixtures), which the run carries. Usage on the device:
#   scripts/device_gpu.sh [ops] [perf] [dit] [bench] [bench-full]     (default: ops perf)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [[ "${1:-}" == "stage" ]]; then  # dev machine: copy binaries and host libraries into .devcarry
    BUILD=${BUILD:-build-cuda}
    rm -rf .devcarry && mkdir -p .devcarry/bin
    TESTS="test_backend_ops test_cuda_ops_gpu test_cuda_perf_gpu test_dit_gpu test_causal test_stream test_vae"
    for b in wanrt $(printf 'tests/%s ' $TESTS); do
        [[ -f $BUILD/$b ]] && cp "$BUILD/$b" .devcarry/bin/ && strip --strip-debug .devcarry/bin/$(basename $b)
    done
    # Fixtures the staged tests name that tests/fixtures lacks (the > 5 MB files kept only in
    # ../shared/fixtures): only those, so the carry stays small.
    mkdir -p .devcarry/fixtures
    for f in $(cd tests && grep -ohE '"[A-Za-z0-9_]+\.(safetensors|pth|gguf)"' $(printf '%s.cpp ' $TESTS) 2>/dev/null | tr -d '"' | sort -u); do
        [[ -f tests/fixtures/$f ]] && continue
        if [[ -f ../shared/fixtures/$f ]]; then cp ../shared/fixtures/$f .devcarry/fixtures/
        else echo "stage: fixture $f is in neither tests/fixtures nor ../shared/fixtures" >&2; fi
    done
    tmp=$(mktemp -d) && mkdir "$tmp/libs"
    for l in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libsentencepiece.so.0; do
        p=$(ldd "$BUILD/wanrt" | awk -v l=$l '$1==l {print $3}')
        [[ -n "$p" ]] && cp -L "$p" "$tmp/libs/"
    done
    ldd "$BUILD/wanrt" | awk '/=> \// {print $3}' | grep -vE "libc\.so|libm\.so|libstdc|libgcc_s|libdl|libpthread|librt|cuda|cudnn|cublas|ld-linux" \
        | while read -r p; do cp -Ln "$p" "$tmp/libs/" 2>/dev/null; done
    tar cJf .devcarry/libs.tar.xz -C "$tmp" libs && rm -rf "$tmp"
    if [[ -n "${NO_CLI:-}" ]]; then rm -f .devcarry/bin/wanrt .devcarry/libs.tar.xz; fi
    # The run carries at most 64 MiB with the working tree: the binaries travel compressed.
    tar cJf .devcarry/bin.tar.xz -C .devcarry bin && rm -rf .devcarry/bin
    du -sh .devcarry/* && exit 0
fi

OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(ops perf)
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

{
    date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    ls /usr/lib/x86_64-linux-gnu | grep -E "libcudnn\.so|libcublas" ; ls /usr/local/cuda/lib64 2>/dev/null | grep -E "cublasLt|cudart\.so"
} > "$OUT/summary.txt" 2>&1
head -3 "$OUT/summary.txt"

[[ -f .devcarry/bin.tar.xz ]] && python3 -c "import tarfile; tarfile.open('.devcarry/bin.tar.xz').extractall('.devcarry')"
[[ -f .devcarry/libs.tar.xz ]] && mkdir -p /tmp/wanrt_libs && python3 -c "import tarfile; tarfile.open('.devcarry/libs.tar.xz').extractall('/tmp/wanrt_libs')"
export LD_LIBRARY_PATH=/tmp/wanrt_libs/libs:/usr/local/cuda/lib64:/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
BIN=.devcarry/bin
chmod +x $BIN/* 2>/dev/null
# The test binaries' compiled-in fixture folders are the dev machine's: look in the staged ones.
export WANRT_FIXTURES=$ROOT/.devcarry/fixtures:$ROOT/tests/fixtures
[[ -f $BIN/wanrt ]] && ldd $BIN/wanrt | grep -E "not found|cudnn|cublas|cudart" >> "$OUT/summary.txt"

for s in "${steps[@]}"; do
    case $s in
        ops)  # the op table on the CPU and CUDA (every op, dtype, awkward shape), then the CUDA-only checks
            log "test_backend_ops + test_cuda_ops_gpu"
            timeout 300 $BIN/test_backend_ops > "$OUT/ops.log" 2>&1; echo "rc=$?" >> "$OUT/ops.log"
            timeout 240 $BIN/test_cuda_ops_gpu >> "$OUT/ops.log" 2>&1; echo "rc=$?" >> "$OUT/ops.log"
            grep -E "FAIL|PASSED|rc=" "$OUT/ops.log" | tail -30 | tee -a "$OUT/summary.txt" ;;
        sanitize)  # compute-sanitizer memcheck over the op tests (out-of-bounds and misaligned accesses)
            log "compute-sanitizer memcheck test_backend_ops (cuda)"
            CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
            timeout 300 $CS --tool memcheck --error-exitcode 9 $BIN/test_backend_ops --gtest_filter='*cuda*' > "$OUT/sanitize.log" 2>&1
            echo "rc=$?" >> "$OUT/sanitize.log"
            grep -E "ERROR SUMMARY|PASSED|FAILED|rc=" "$OUT/sanitize.log" | tail -6 | tee -a "$OUT/summary.txt" ;;
        perf)
            log "test_cuda_perf_gpu"
            timeout 240 $BIN/test_cuda_perf_gpu --gtest_filter=-CudaPerf.Vae480p:CudaPerf.T5Encode512 > "$OUT/perf.log" 2>&1; echo "rc=$?" >> "$OUT/perf.log"
            grep -E "device:|gemm|flash|cudnn|dit |PASSED|FAILED|rc=" "$OUT/perf.log" | tee -a "$OUT/summary.txt" ;;
        dit)
            log "test_dit_gpu"
            timeout 240 $BIN/test_dit_gpu > "$OUT/dit.log" 2>&1; echo "rc=$?" >> "$OUT/dit.log"
            grep -E "out\.y|PASSED|FAILED|rc=" "$OUT/dit.log" | tail -8 | tee -a "$OUT/summary.txt" ;;
        causal)  # issue 6 on the GPU: causal golden/equivalence/soak tests, stream tests, then the timings
            log "test_causal + test_stream on cuda"
            # Stream.CommandLine runs the CLI from its build path, which is not on this machine (CI runs it).
            for t in test_causal test_stream; do
                WANRT_TEST_DEVICE=cuda timeout 300 $BIN/$t \
                    --gtest_filter=-Stream.CommandLine* > "$OUT/$t.log" 2>&1
                echo "rc=$?" >> "$OUT/$t.log"
                grep -E "FAILED|PASSED|rc=" "$OUT/$t.log" | tail -6 | tee -a "$OUT/summary.txt"
            done ;;
        vae-golden)  # the VAE goldens (encode, decode, pipeline decode) on the GPU
            log "test_vae goldens on cuda"
            WANRT_TEST_DEVICE=cuda timeout 240 $BIN/test_vae --gtest_filter='VaeGolden.*' \
                > "$OUT/test_vae.log" 2>&1; echo "rc=$?" >> "$OUT/test_vae.log"
            grep -E "golden|FAILED|PASSED|rc=" "$OUT/test_vae.log" | tail -10 | tee -a "$OUT/summary.txt" ;;
        bench-causal)  # issue 6's table: causal DiT cases with per-op breakdown, then streaming V2V
            log "bench causal"
            timeout 300 $BIN/wanrt bench causal --device cuda --v2v ${CAUSAL_ARGS:-} --json "$OUT/bench_causal.json" \
                > "$OUT/bench_causal.log" 2>&1; echo "rc=$?" >> "$OUT/bench_causal.log"
            grep -vE "^\s+(model|frame|load_s|warmup)" "$OUT/bench_causal.log" | tail -70 | tee -a "$OUT/summary.txt" ;;
        bench-vae-stream)  # the streaming VAE: 4-frame chunks at 480p with warm caches, per-op breakdown
            log "bench vae stream 480p"
            timeout 300 $BIN/wanrt bench vae --device cuda --mode stream --profile --height 480 --width 832 \
                --warmup 2 --repeats 5 --json "$OUT/bench_vae_stream.json" > "$OUT/bench_vae_stream.log" 2>&1
            echo "rc=$?" >> "$OUT/bench_vae_stream.log"
            grep -vE "^\s+(weights|config|video|latent|load_ms|warmup)" "$OUT/bench_vae_stream.log" | tail -30 | tee -a "$OUT/summary.txt" ;;
        bench-ops)  # single ops at the DiT's shapes
            log "bench ops"
            timeout 120 $BIN/wanrt bench ops --device cuda > "$OUT/bench_ops.log" 2>&1; echo "rc=$?" >> "$OUT/bench_ops.log"
            tail -22 "$OUT/bench_ops.log" | tee -a "$OUT/summary.txt" ;;
        bench)  # 2 blocks at 480p/81 frames: quick look with the per-op breakdown
            log "bench dit 2 blocks"
            timeout 240 $BIN/wanrt bench dit --device cuda --frames 81 --layers 2 --warmup 2 --repeats 3 \
                --json "$OUT/bench2.json" > "$OUT/bench2.log" 2>&1; echo "rc=$?" >> "$OUT/bench2.log"
            grep -vE "^\s+(model|latent|tokens|text_tokens|warmup)" "$OUT/bench2.log" | tail -24 | tee -a "$OUT/summary.txt" ;;
        bench-full)  # the issue's case: 1.3B, all 30 blocks, 480p, 81 frames (32,760 tokens)
            log "bench dit full 1.3B"
            timeout 300 $BIN/wanrt bench dit --device cuda --frames 81 --layers 0 --weights_dtype ${WDT:-f32} \
                --warmup 2 --repeats 5 --no_profile --json "$OUT/bench_full.json" > "$OUT/bench_full.log" 2>&1
            echo "rc=$?" >> "$OUT/bench_full.log"
            tail -4 "$OUT/bench_full.log" | tee -a "$OUT/summary.txt" ;;
        bench-full-bf16)  # same with bf16 weights (PyTorch's 704.5 ms case)
            log "bench dit full 1.3B, bf16 weights"
            timeout 300 $BIN/wanrt bench dit --device cuda --frames 81 --layers 0 --weights_dtype bf16 \
                --warmup 2 --repeats 5 --no_profile > "$OUT/bench_full_bf16.log" 2>&1
            echo "rc=$?" >> "$OUT/bench_full_bf16.log"
            tail -4 "$OUT/bench_full_bf16.log" | tee -a "$OUT/summary.txt" ;;
        vae|t5)  # Vae480p / T5Encode512 of test_cuda_perf_gpu (the CLI needs ffmpeg & co., too big to carry)
            filt=$([[ $s == vae ]] && echo CudaPerf.Vae480p || echo CudaPerf.T5Encode512)
            log "perf $filt"
            timeout ${STEP_TIMEOUT:-240} $BIN/test_cuda_perf_gpu --gtest_filter=$filt > "$OUT/$s.log" 2>&1; echo "rc=$?" >> "$OUT/$s.log"
            grep -E "vae|t5|cuDNN|PASSED|FAILED|rc=" "$OUT/$s.log" | tail -8 | tee -a "$OUT/summary.txt" ;;
        generate)  # issue 5's end-to-end case: 1.3B, 480p, 81 frames, 50 steps with CFG (needs the CLI staged)
            log "synth full 1.3B folder + generate 480p 81f 50 steps"
            ( time $BIN/wanrt synth --model t2v-1.3B --full_folder --out /tmp/wan13 ) > "$OUT/synth.log" 2>&1
            tail -3 "$OUT/synth.log" | tee -a "$OUT/summary.txt"
            timeout ${GEN_TIMEOUT:-420} $BIN/wanrt generate --device cuda --ckpt_dir /tmp/wan13 --size '832*480' \
                --frame_num 81 --sample_steps 50 --base_seed 0 --save_file /tmp/wan_out.y4m > "$OUT/generate.log" 2>&1
            echo "rc=$?" >> "$OUT/generate.log"
            tail -22 "$OUT/generate.log" | tee -a "$OUT/summary.txt" ;;
        *) log "unknown step $s" ;;
    esac
done
log "done $(date -u)"
