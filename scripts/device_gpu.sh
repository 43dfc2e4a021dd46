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
#   scripts/device_gpu.sh [ops] [perf] [dit] [bench] [bench-full] [offload]     (default: ops perf)
#
# Issue 14 (I2V / FLF2V) on the GPU. Its chain fixtures are too big to travel with the others (the
# run carries at most 64 MiB with the working tree, ~20 MB of it tests/fixtures): they are an opt-in
# stage of their own, which stages only wanrt and the three I2V test binaries:
#   STAGE_FIXTURES=i2v   scripts/device_gpu.sh stage   pipeline_i2v (30 MB; clip.* is in tests/fixtures)
#   STAGE_FIXTURES=flf2v scripts/device_gpu.sh stage   pipeline_flf2v (40 MB; its large float64 golden
#                                                      keys stored as float32, 34 MB: the GPU tolerances
#                                                      are 1e-3 and up, f32 rounding is 6e-8)
# then on the device `scripts/device_gpu.sh i2v` (test_clip and whichever chain golden is staged, on
# cuda), and with any stage `bench-i2v` (MODEL=flf2v-14B for FLF2V) and `bench-clip`.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

# The long fuzz run (docs/reliability.md, "Fuzzing"): the libFuzzer targets of build-asan with their
# shared libraries, seeds and dictionaries, nothing else (scripts/fuzz.sh stage: .devcarry/fuzz.tar.xz):
#   STAGE_FUZZ=1 scripts/device_gpu.sh stage
# then on the device `FUZZ_SECONDS=520 scripts/device_gpu.sh fuzz-long` (every target at once, 2
# workers each on 16 cores; the table in summary.txt, fuzz/corpus.tar.gz to resume from).
if [[ "${1:-}" == "stage" && -n "${STAGE_FUZZ:-}" ]]; then
    rm -rf .devcarry && mkdir -p .devcarry
    BUILD=${BUILD:-build-asan} bash scripts/fuzz.sh stage || exit 1
    du -sh .devcarry/*
    # The run sends the working tree (tracked and untracked-not-ignored files) plus the carry: 64 MiB in all.
    # tests/fixtures alone is ~24 MB; when a stage needs the room, copy the fixtures its tests read into
    # .devcarry/fixtures and move tests/fixtures out of the tree for the call (restore it afterwards).
    tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
    carry=$(du -sb .devcarry | cut -f1)
    echo "stage: tree $((tree >> 20)) MiB + carry $((carry >> 20)) MiB = $(((tree + carry) >> 20)) MiB (limit 64)"
    exit 0
fi
if [[ "${1:-}" == "stage" ]]; then  # dev machine: copy binaries and host libraries into .devcarry
    BUILD=${BUILD:-build-cuda}
    rm -rf .devcarry && mkdir -p .devcarry/bin
    TESTS=${STAGE_TESTS:-test_backend_ops test_cuda_ops_gpu test_cuda_perf_gpu test_dit_gpu test_dit_offload test_causal test_stream test_vae test_vae_tiled test_step_cache test_clip test_pipeline_i2v test_pipeline_flf2v}
    # The I2V chain fixtures travel only in their opt-in stage (see the top of the file).
    I2V_FIXTURES="pipeline_i2v.safetensors pipeline_flf2v.safetensors"
    case ${STAGE_FIXTURES:-default} in
        default) ;;
        i2v|flf2v) TESTS="test_clip test_pipeline_i2v test_pipeline_flf2v" ;;
        # The eight binaries and six fixtures do not fit one carry: STAGE_TESTS and STAGE_FIXTURE_FILES
        # pick a part (e.g. test_vae22 test_pipeline_ti2v with vae22, pipeline_ti2v and dit_ti2v).
        wan22) TESTS=${STAGE_TESTS:-test_vae22 test_pipeline_ti2v test_pipeline_moe test_taehv test_lora test_step_cache test_diffusers test_diffusers_ti2v} ;;
        *) echo "stage: STAGE_FIXTURES=$STAGE_FIXTURES: use i2v, flf2v, wan22 or leave it unset" >&2; exit 1 ;;
    esac
    for b in wanrt $(printf 'tests/%s ' $TESTS); do
        [[ -f $BUILD/$b ]] && cp "$BUILD/$b" .devcarry/bin/ && strip --strip-debug .devcarry/bin/$(basename $b)
    done
    # A build with FFmpeg (CI's `build`) needs ~40 MB of codec libraries that do not fit the carry.
    # Nothing on the device writes .mp4/.png (the steps write .y4m): the FFmpeg libraries travel as
    # stubs with the same sonames and symbol versions whose every function stops the program with
    # one line (logging setup excepted: a no-op; codec lookups find none, so a PNG writer fails with
    # its one-line error). The binaries themselves are unchanged.
    stubs=$(mktemp -d)
    for lv in avcodec:LIBAVCODEC_59:59 avformat:LIBAVFORMAT_59:59 avutil:LIBAVUTIL_57:57 swscale:LIBSWSCALE_6:6; do
        IFS=: read -r lib ver so <<< "$lv"
        syms=$(objdump -T .devcarry/bin/* 2>/dev/null | awk -v v="($ver)" 'NF > 1 && $(NF-1) == v {print $NF}' | sort -u)
        [[ -z "$syms" ]] && continue
        { echo '#include <stdio.h>'; echo '#include <stdlib.h>'
          for f in $syms; do
              # Logging setup runs at start-up whatever the output: a no-op there.
              if [[ $f == av_log_set_* ]]; then echo "void $f(void) {}"; continue; fi
              # "No such codec": the caller's one-line error, which the trainer's loss.png catches.
              if [[ $f == avcodec_find_* ]]; then echo "void* $f(void) { return NULL; }"; continue; fi
              echo "void $f(void) { fputs(\"wanrt: $f: FFmpeg was not staged on this machine (scripts/device_gpu.sh stage); write .y4m\\n\", stderr); abort(); }"
          done
        } > "$stubs/$lib.c"
        { echo "$ver {"; echo " global:"; for f in $syms; do echo "  $f;"; done; echo " local: *;"; echo "};"; } > "$stubs/$lib.map"
        gcc -shared -fPIC -O1 -o "$stubs/lib$lib.so.$so" "$stubs/$lib.c" -Wl,-soname,lib$lib.so.$so -Wl,--version-script,"$stubs/$lib.map" || exit 1
    done
    # Fixtures the staged tests name that tests/fixtures lacks (the > 5 MB files kept only in
    # ../shared/fixtures): only those, so the carry stays small.
    mkdir -p .devcarry/fixtures
    case ${STAGE_FIXTURES:-default} in
        i2v) FIXTURES=pipeline_i2v.safetensors ;;
        flf2v) FIXTURES=pipeline_flf2v.safetensors ;;
        # Issue 17/18/19's new goldens; the .pth copies (taehv_weights.pth is 23 MB) stay behind:
        # run those binaries with --gtest_filter=-*Pth* there.
        wan22) FIXTURES=${STAGE_FIXTURE_FILES:-vae22.safetensors pipeline_ti2v.safetensors pipeline_moe.safetensors pipeline_moe_i2v.safetensors taehv.safetensors dit_ti2v.safetensors} ;;
        *) FIXTURES=$(cd tests && grep -ohE '"[A-Za-z0-9_]+\.(safetensors|pth|gguf)"' $(printf '%s.cpp ' $TESTS) 2>/dev/null | tr -d '"' | sort -u \
                      | grep -vxF -f <(tr ' ' '\n' <<< "$I2V_FIXTURES")) ;;
    esac
    for f in $FIXTURES; do
        [[ -f tests/fixtures/$f ]] && continue
        if [[ ! -f ../shared/fixtures/$f ]]; then echo "stage: fixture $f is in neither tests/fixtures nor ../shared/fixtures" >&2
        elif [[ ${STAGE_FIXTURES:-} == flf2v ]]; then
            # 40 MB does not fit with the tree and binaries: mid.*/out.* float64 tensors of 64 KiB and
            # more become float32 (the tests read any dtype; the small and exact keys stay float64).
            python3 - ../shared/fixtures/$f .devcarry/fixtures/$f <<'PY' || exit 1
import array, json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as fh:
    n = struct.unpack("<Q", fh.read(8))[0]
    head = json.loads(fh.read(n))
    base = 8 + n
    out_head, chunks, at = {}, [], 0
    for k in sorted((k for k in head if k != "__metadata__"), key=lambda k: head[k]["data_offsets"][0]):
        t = dict(head[k]); b, e = t["data_offsets"]
        fh.seek(base + b); data = fh.read(e - b)
        if t["dtype"] == "F64" and k.split(".")[0] in ("mid", "out") and len(data) >= 65536:
            d = array.array("d"); d.frombytes(data)
            data = array.array("f", d).tobytes(); t["dtype"] = "F32"
        t["data_offsets"] = [at, at + len(data)]; at += len(data)
        out_head[k] = t; chunks.append(data)
if "__metadata__" in head: out_head["__metadata__"] = head["__metadata__"]
hj = json.dumps(out_head, separators=(",", ":")).encode()
hj += b" " * (-len(hj) % 8)
with open(dst, "wb") as fh:
    fh.write(struct.pack("<Q", len(hj))); fh.write(hj)
    for c in chunks: fh.write(c)
PY
        else cp ../shared/fixtures/$f .devcarry/fixtures/; fi
    done
    tmp=$(mktemp -d) && mkdir "$tmp/libs"
    cp "$stubs"/*.so.* "$tmp/libs/" 2>/dev/null; export LD_LIBRARY_PATH=$stubs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    for l in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libsentencepiece.so.0; do
        p=$(ldd .devcarry/bin/wanrt | awk -v l=$l '$1==l {print $3}')
        [[ -n "$p" ]] && cp -Ln "$p" "$tmp/libs/"
    done
    ldd .devcarry/bin/* | awk '/=> \// {print $3}' | sort -u | grep -vE "libc\.so|libm\.so|libstdc|libgcc_s|libdl|libpthread|librt|cuda|cudnn|cublas|ld-linux" \
        | while read -r p; do cp -Ln "$p" "$tmp/libs/" 2>/dev/null; done
    tar cJf .devcarry/libs.tar.xz -C "$tmp" libs && rm -rf "$tmp" "$stubs"
    if [[ -n "${NO_CLI:-}" ]]; then rm -f .devcarry/bin/wanrt .devcarry/libs.tar.xz; fi
    # The run carries at most 64 MiB with the working tree: the binaries travel compressed.
    tar cJf .devcarry/bin.tar.xz -C .devcarry bin && rm -rf .devcarry/bin
    du -sh .devcarry/*
    # The run sends the working tree (tracked and untracked-not-ignored files) plus the carry: 64 MiB in all.
    # tests/fixtures alone is ~24 MB; when a stage needs the room, copy the fixtures its tests read into
    # .devcarry/fixtures and move tests/fixtures out of the tree for the call (restore it afterwards).
    tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
    carry=$(du -sb .devcarry | cut -f1)
    echo "stage: tree $((tree >> 20)) MiB + carry $((carry >> 20)) MiB = $(((tree + carry) >> 20)) MiB (limit 64)"
    exit 0
fi

OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(ops perf)
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
# A training checkpoint's DiT (its f32 masters; `wanrt convert` reads trainer checkpoints) as a DiT
# file, and the checkpoint itself in ≤ 15 MB parts (`cat ckpt.part-* > c.safetensors` to resume from it
# on the dev machine): checkpoint_out CHECKPOINT DIR.
checkpoint_out() {
    split -b 15M -d "$1" "$2/ckpt.part-"
    $BIN/wanrt convert "$1" "$2/dit_masters.safetensors" --type f32 > /dev/null 2>&1
}

{
    date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    ls /usr/lib/x86_64-linux-gnu | grep -E "libcudnn\.so|libcublas" ; ls /usr/local/cuda/lib64 2>/dev/null | grep -E "cublasLt|cudart\.so"
} > "$OUT/summary.txt" 2>&1
head -3 "$OUT/summary.txt"

# Once per call: a nested call (session17's trainer beside the parent's steps) must not rewrite
# libraries and binaries that running processes have mapped.
if [[ -z "${WANRT_UNPACKED:-}" ]]; then
    [[ -f .devcarry/bin.tar.xz ]] && python3 -c "import tarfile; tarfile.open('.devcarry/bin.tar.xz').extractall('.devcarry')"
    [[ -f .devcarry/libs.tar.xz ]] && mkdir -p /tmp/wanrt_libs && python3 -c "import tarfile; tarfile.open('.devcarry/libs.tar.xz').extractall('/tmp/wanrt_libs')"
    export WANRT_UNPACKED=1
fi
export LD_LIBRARY_PATH=/tmp/wanrt_libs/libs:/usr/local/cuda/lib64:/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
BIN=.devcarry/bin
chmod +x $BIN/* 2>/dev/null
# The test binaries' compiled-in fixture folders are the dev machine's: look in the staged ones.
export WANRT_FIXTURES=$ROOT/.devcarry/fixtures:$ROOT/tests/fixtures
export WANRT_BIN=$ROOT/$BIN/wanrt  # and the CLI tests' wanrt (tests/test_util.h)
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
        vae-golden)  # the VAE goldens (encode, decode, pipeline decode, half-precision convs, tiling) on the GPU
            log "test_vae goldens + test_vae_tiled on cuda"
            WANRT_TEST_DEVICE=cuda timeout 240 $BIN/test_vae --gtest_filter='VaeGolden.*' \
                > "$OUT/test_vae.log" 2>&1; echo "rc=$?" >> "$OUT/test_vae.log"
            WANRT_TEST_DEVICE=cuda timeout 240 $BIN/test_vae_tiled >> "$OUT/test_vae.log" 2>&1; echo "rc=$?" >> "$OUT/test_vae.log"
            grep -E "golden|tiled|FAILED|PASSED|rc=" "$OUT/test_vae.log" | tail -16 | tee -a "$OUT/summary.txt" ;;
        wan22)  # issues 17-19 on the GPU (stage with STAGE_FIXTURES=wan22): Wan2.2 VAE, TI2V, MoE, TAEHV, LoRA, caching
            log "wan22 goldens on cuda"
            for t in test_vae22 test_pipeline_ti2v test_pipeline_moe test_taehv test_lora test_step_cache test_diffusers test_diffusers_ti2v; do
                [[ -f $BIN/$t ]] || { log "$t not staged"; continue; }
                WANRT_TEST_DEVICE=cuda timeout 240 $BIN/$t --gtest_filter='-*Pth*:*Cli*:*CommandLine*' > "$OUT/$t.log" 2>&1
                echo "rc=$?" >> "$OUT/$t.log"
                grep -E "rel-L2|FAILED|PASSED|rc=" "$OUT/$t.log" | tail -12 | tee -a "$OUT/summary.txt"
            done ;;
        offload)  # issue 15: DiT blocks streamed from pinned host memory: bit-exact vs resident, peak memory
            log "test_dit_offload on cuda"
            WANRT_TEST_DEVICE=cuda timeout 240 $BIN/test_dit_offload --gtest_filter='-*CommandLine*' > "$OUT/offload.log" 2>&1; echo "rc=$?" >> "$OUT/offload.log"
            for a in "" "--offload --max_vram ${MAX_VRAM:-4G}"; do  # 14B widths, 40 blocks, 480p 81 frames
                log "bench dit t2v-14B $a"
                timeout 270 $BIN/wanrt bench dit --device cuda --model t2v-14B --layers 0 --weights_dtype bf16 --frames 81 \
                    --no_profile --warmup 1 --repeats 2 $a >> "$OUT/offload.log" 2>&1; echo "rc=$?" >> "$OUT/offload.log"
            done
            grep -E "peak memory|weights|forward|FAILED|PASSED|rc=" "$OUT/offload.log" | tee -a "$OUT/summary.txt" ;;
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
        bench-vae)  # issue 17: whole-clip VAE at 480p (VAE_ARGS adds e.g. --height 720 --width 1280 or --tile)
            log "bench vae whole clip ${VAE_ARGS:-}"
            timeout ${STEP_TIMEOUT:-300} $BIN/wanrt bench vae --device cuda --mode both --latent_frames 21 --height 480 \
                --width 832 --warmup 1 --repeats 3 ${VAE_ARGS:-} --json "$OUT/bench_vae.json" > "$OUT/bench_vae.log" 2>&1
            echo "rc=$?" >> "$OUT/bench_vae.log"
            grep -vE "^\s+(weights|config|video|latent|load_ms|warmup)" "$OUT/bench_vae.log" | tail -60 | tee -a "$OUT/summary.txt" ;;
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
        i2v)  # issue 14 on the GPU: the CLIP golden and the staged I2V / FLF2V chain goldens on cuda
            log "test_clip + test_pipeline_i2v + test_pipeline_flf2v on cuda"
            for t in test_clip test_pipeline_i2v test_pipeline_flf2v; do
                need=$(case $t in test_clip) echo clip.safetensors ;; test_pipeline_i2v) echo pipeline_i2v.safetensors ;;
                       *) echo pipeline_flf2v.safetensors ;; esac)
                if [[ ! -f .devcarry/fixtures/$need && ! -f tests/fixtures/$need ]]; then
                    log "$t skipped: $need not staged; stage with STAGE_FIXTURES=$([[ $t == *flf2v ]] && echo flf2v || echo i2v)"
                    continue
                fi
                if [[ ! -f $BIN/$t ]]; then log "$t skipped: not staged"; continue; fi
                WANRT_TEST_DEVICE=cuda timeout 300 $BIN/$t > "$OUT/$t.log" 2>&1; echo "rc=$?" >> "$OUT/$t.log"
                grep -E "\] on |rel-L2|FAILED|PASSED|rc=" "$OUT/$t.log" | tail -45 | tee -a "$OUT/summary.txt"
            done ;;
        bench-i2v)  # issue 14: one I2V-14B forward at 480p, 81 frames (32,760 + 257 image tokens), bf16 weights
            m=${MODEL:-i2v-14B}
            log "bench dit $m full, 480p 81 frames, bf16 weights"
            timeout ${STEP_TIMEOUT:-540} $BIN/wanrt bench dit --device cuda --model $m --frames 81 --layers 0 \
                --weights_dtype bf16 --warmup 2 --repeats 5 --no_profile --json "$OUT/bench_$m.json" > "$OUT/bench_$m.log" 2>&1
            echo "rc=$?" >> "$OUT/bench_$m.log"
            tail -12 "$OUT/bench_$m.log" | tee -a "$OUT/summary.txt" ;;
        bench-clip)  # issue 14: CLIP encode of one 224x224 picture (I2V) and of two (FLF2V), fp16 weights
            log "bench clip (batch 1, then 2)"
            for b in 1 2; do  # JSON of batch 1 only: at most 8 files come back
                timeout 240 $BIN/wanrt bench clip --device cuda --batch $b --warmup 5 --repeats 20 \
                    $([[ $b == 1 ]] && echo --json "$OUT/bench_clip.json") >> "$OUT/bench_clip.log" 2>&1
                echo "rc=$?" >> "$OUT/bench_clip.log"
            done
            grep -vE "^\s+(model|tokens|load_ms|warmup)" "$OUT/bench_clip.log" | grep -vE "^  \S+ x[0-9]" | tee -a "$OUT/summary.txt"
            grep -E "^  \S+ x[0-9]" "$OUT/bench_clip.log" | head -12 | tee -a "$OUT/summary.txt" ;;
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
        pending)  # session 5's un-run GPU figures (docs/perf.md "Pending on the GPU"), one log
            log "pending benches (VAE split, Wan2.2 VAE, TAEHV, LoRA, serve, OOM)"
            P="$OUT/pending.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-150} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            for split in 0 9999999999; do  # per-frame full-res layers on (0: always) / off
                run_p $W bench vae --device cuda --mode decode --latent_frames 21 --height 720 --width 1280 \
                    --warmup 1 --repeats 2 --conv_dtype f16 --split_min_pixels $split
            done
            run_p $W bench vae --model wan22 --device cuda --height 704 --width 1280 --latent_frames 31 --mode decode --warmup 1 --repeats 2
            run_p $W bench vae --vae tae --device cuda --height 480 --width 832 --latent_frames 21 --mode decode --warmup 2 --repeats 5
            run_p $W bench vae --vae tae --device cuda --height 480 --width 832 --latent_frames 21 --mode decode --warmup 2 --repeats 5 --conv_dtype f16
            run_p $W bench vae --vae tae --device cuda --height 480 --width 832 --mode stream --warmup 2 --repeats 5 --conv_dtype f16
            run_p $W bench causal --v2v --device cuda --vae_dtype f16
            run_p $W bench dit --device cuda --layers 0 --frames 81 --weights_dtype bf16 --lora_rank 64 --warmup 2 --repeats 5 --no_profile  # also times rank 0
            run_p $W bench serve --device cuda --width 832 --height 480 --steps 2 --chunks 20
            mkdir -p /tmp/oom; run_p $W generate --device cuda --size '16384*16384' --frame_num 81 --sample_steps 1 --save_file /tmp/oom/x.y4m
            echo "left in /tmp/oom: $(ls -A /tmp/oom | wc -l)" >> "$P"
            grep -E "^###|rc=|decode|encode|peak|median|fps|FPS|chunk|step|error|left in" "$P" | cut -c1-200 | tail -90 | tee -a "$OUT/summary.txt" ;;
        gen-cache)  # issue 18: 1.3B 480p 81 frames 50 steps, uncached vs MagCache/TeaCache; then the 4-step LCM run
            log "generate 50 steps with and without step caching; 4-step lcm"
            G="$OUT/gen_cache.log"; W=$BIN/wanrt
            ( time $W synth --model t2v-1.3B --full_folder --dtype bf16 --out /tmp/t13 ) > "$G" 2>&1
            for c in none magcache teacache; do
                echo "### cache $c" >> "$G"
                timeout ${STEP_TIMEOUT:-200} $W bench generate --ckpt_dir /tmp/t13 --device cuda --width 832 --height 480 \
                    --frame_num 81 --sample_steps 50 $([[ $c != none ]] && echo --cache $c) >> "$G" 2>&1; echo "rc=$?" >> "$G"
            done
            echo "### lcm 4 steps" >> "$G"
            ( time timeout 120 $W generate --ckpt_dir /tmp/t13 --size '832*480' --sample_solver lcm --sample_steps 4 \
                --sample_shift 5 --sample_guide_scale 1 --device cuda --save_file /tmp/lcm.y4m ) >> "$G" 2>&1; echo "rc=$?" >> "$G"
            grep -vE "^\s+(model|latent|warmup)" "$G" | tail -80 | tee -a "$OUT/summary.txt" ;;
        session7)  # session 6's un-run GPU checks: FP8 linears (15/16), run-time LoRA patch path and the
                   # 4-step run with TAEHV (18), one log; `offload` and `session7b` are the other two calls
            log "fp8 tests + benches, LoRA patch path, 4-step lcm with TAEHV"
            P="$OUT/session7.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-150} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            run_p $BIN/test_backend_ops --gtest_filter='*fp8*'
            run_p $BIN/test_cuda_ops_gpu --gtest_filter='CudaOps.Fp8*'
            WANRT_TEST_DEVICE=cuda run_p $BIN/test_dit_gpu --gtest_filter='DitGoldenGpu.*'
            run_p $W bench ops --device cuda --tokens 32760 --only linear_
            for l in bf16 fp8; do
                run_p $W bench dit --device cuda --layers 0 --frames 81 --weights_dtype bf16 --linear_dtype $l --warmup 2 --repeats 5 --no_profile
            done
            run_p $W bench dit --device cuda --layers 0 --frames 81 --weights_dtype bf16 --lora_rank 64 --warmup 2 --repeats 5 --no_profile
            run_p $W synth --model t2v-1.3B --full_folder --dtype bf16 --tae --out /tmp/t13
            for r in 1 2; do  # the second run: files in the page cache, as a warm serve process would have them
                echo "### lcm 4 steps, TAEHV, run $r" >> "$P"
                ( time timeout 120 $W generate --ckpt_dir /tmp/t13 --size '832*480' --sample_solver lcm --sample_steps 4 \
                    --sample_shift 5 --sample_guide_scale 1 --device cuda --vae tae --vae_checkpoint /tmp/t13/taew2_1.pth \
                    --save_file /tmp/lcm.y4m ) >> "$P" 2>&1; echo "rc=$?" >> "$P"
            done
            grep -E "^###|rc=|PASSED|FAILED|rel-L2|linear_|forward|peak|median|real|load|encode|denoise|decode|write|step" "$P" \
                | cut -c1-200 | tail -100 | tee -a "$OUT/summary.txt" ;;
        session7b)  # Wan2.2 VAE with whole chunks / f16 convs (19), serve with JPEG frames (20)
            log "vae22 variants, serve"
            P="$OUT/session7b.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-150} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            for a in "--whole_chunks" "--conv_dtype f16" "--whole_chunks --conv_dtype f16"; do
                run_p $W bench vae --model wan22 --device cuda --height 704 --width 1280 --latent_frames 31 --mode decode --warmup 1 --repeats 2 $a
            done
            run_p $W bench serve --device cuda --width 832 --height 480 --steps 2 --chunks 20
            run_p $W bench vae --vae tae --device cuda --height 480 --width 832 --latent_frames 21 --mode decode --warmup 2 --repeats 5 --conv_dtype f16 --profile
            grep -E "^###|rc=|decode|peak|median|fps|FPS|chunk|overhead|error|^  \S+ x[0-9]" "$P" | cut -c1-200 | tail -90 | tee -a "$OUT/summary.txt" ;;
        session8)  # the one-pass LoRA patch (18), the stage-wise memory release (15), the half lincomb rows
            log "lincomb rows, memory release, LoRA patch, 14B generate under --max_vram"
            P="$OUT/session8.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-200} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            run_p $BIN/test_backend_ops --gtest_filter='*lincomb*'
            run_p $BIN/test_cuda_ops_gpu --gtest_filter='CudaOps.ReleaseCached*:CudaOps.Allocator*'
            WANRT_TEST_DEVICE=cuda run_p $BIN/test_lora
            for r in 0 64; do
                run_p $W bench dit --device cuda --layers 0 --frames 81 --weights_dtype bf16 --lora_rank $r --warmup 2 --repeats 5 --no_profile
            done
            run_p $W synth --model t2v-14B --full_folder --dtype bf16 --out /tmp/w14
            for v in ${MAX_VRAMS:-8G 16G}; do
                nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/mem.txt & smi=$!
                run_p $W generate --ckpt_dir /tmp/w14 --device cuda --size '832*480' --frame_num 81 --sample_steps 2 \
                    --offload --max_vram $v --save_file /tmp/w14.y4m
                kill $smi; echo "--max_vram $v: device memory used, sampled every 100 ms: peak $(sort -n /tmp/mem.txt | tail -1) MiB" >> "$P"
            done
            rm -rf /tmp/w14
            grep -E "^###|rc=|PASSED|FAILED|OK \]|rel-L2|forward|peak|device memory|denoise|total|error" "$P" | cut -c1-220 | tail -80 | tee -a "$OUT/summary.txt" ;;
        teacache8)  # issue 18: TeaCache's speedup through our code; its decisions depend on trained weights, so the
                    # threshold is the smallest of a ladder that reuses about half the calls on the random 1.3B
            log "TeaCache threshold ladder (5 frames), then 81 frames: none vs teacache"
            P="$OUT/teacache8.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-200} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            # The folder's synthetic umT5-XXL is 11 GB: its own limit (45 s was too short in session 16).
            STEP_TIMEOUT=${SYNTH_TIMEOUT:-150} run_p $W synth --model t2v-1.3B --full_folder --dtype bf16 --out /tmp/t13
            G="$W generate --ckpt_dir /tmp/t13 --device cuda --size 832*480 --sample_steps 50 --save_file /tmp/tc.y4m"
            pick=""
            for t in ${TC_LADDER:-0.08 0.3 1 3 10 30}; do
                $G --frame_num 5 --cache teacache:$t > /tmp/tc.txt 2>&1
                c=$(grep -o "[0-9]* of [0-9]* DiT calls computed" /tmp/tc.txt | head -1)
                echo "ladder teacache:$t -> $c" >> "$P"
                n=${c%% of*}
                if [ -n "$n" ] && [ "$n" -le 55 ] && [ -z "$pick" ]; then pick=$t; fi
            done
            pick=${pick:-10}
            run_p $G --frame_num 81
            run_p $G --frame_num 81 --cache teacache:$pick
            grep -E "^###|^ladder|rc=|denoise  |DiT calls|cache   |thresh" "$P" | cut -c1-200 | tail -40 | tee -a "$OUT/summary.txt" ;;
        session8b)  # issue 15: GGUF block weights kept quantized on CUDA (dequantized per call into a bf16 scratch)
            log "quantized linears on cuda, GGUF DiT resident memory"
            P="$OUT/session8b.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-200} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            run_p $BIN/test_backend_ops --gtest_filter='Table/BackendOps.MatchesFloat64/cuda_linear:BackendOpsCoverage.*'
            run_p $BIN/test_quant_gpu --gtest_filter='CudaQuant.*'
            run_p $BIN/test_dit_gpu --gtest_filter='-*I2V*'  # dit_i2v.safetensors (13 MB) is not carried
            WANRT_TEST_DEVICE=cuda run_p $BIN/test_dit_offload
            run_p $W synth --model t2v-1.3B --dtype bf16 --out /tmp/m13
            for q in q8_0 q4_k_m; do
                mkdir -p /tmp/g_$q && cp /tmp/m13/config.json /tmp/g_$q/
                run_p $W convert /tmp/m13 /tmp/g_$q/dit_$q.gguf --type $q
            done
            for d in /tmp/m13 /tmp/g_q8_0 /tmp/g_q4_k_m; do
                run_p $W bench dit --device cuda --ckpt_dir $d --frames 81 --warmup 1 --repeats 3 --no_profile
                run_p $W bench dit --device cuda --ckpt_dir $d --frames 1 --warmup 2 --repeats 5 --no_profile
            done
            grep -E "^###|rc=|PASSED|FAILED|OK \]|rel-L2|forward|peak|resident|weights  " "$P" | cut -c1-220 | tail -90 | tee -a "$OUT/summary.txt" ;;
        convlayout)  # issue 17: cuDNN half convs NCDHW vs NDHWC at TAEHV / Wan VAE shapes
            log "conv layouts"
            timeout 300 $BIN/test_cuda_perf_gpu --gtest_filter='*ConvLayouts*' 2>&1 | tee $OUT/convlayout.log | grep -E "conv f16|OK|FAILED|rel" | tee -a "$OUT/summary.txt" ;;
        session9b)  # issue 17: TAEHV with half activations; issue 19: Wan2.2 VAE memory fixes and tiling
            log "half activations (op table), TAEHV, Wan2.2 VAE"
            P="$OUT/session9b.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-200} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            run_p $BIN/test_backend_ops
            WANRT_TEST_DEVICE=cuda run_p $BIN/test_vae22
            WANRT_TEST_DEVICE=cuda run_p $BIN/test_vae_tiled
            for d in f16 f32; do
                run_p $W bench vae --vae tae --device cuda --height 480 --width 832 --latent_frames 21 --mode both --warmup 2 --repeats 5 --conv_dtype $d --profile
            done
            run_p $W bench vae --vae tae --device cuda --height 480 --width 832 --mode stream --warmup 2 --repeats 5 --conv_dtype f16
            V22="bench vae --model wan22 --device cuda --height 704 --width 1280 --latent_frames 31 --mode decode --conv_dtype f16 --warmup 0 --repeats 1"
            run_p $W $V22 --profile
            run_p $W $V22 --tile 512:384 --tile_compare
            run_p $W $V22 --tile 768:704
            grep -E "^###|rc=|PASSED|FAILED|rel-L2 [0-9.e-]+ .*(f16|bf16)|decode|encode|stream|peak|conv3d|copy|unary|binary|upsample|lincomb|tiled" "$P" | cut -c1-200 | tail -120 | tee -a "$OUT/summary.txt" ;;
        session9c)  # the 32-bit binary kernel: op table, then the Wan2.2 VAE decode it was for
            P="$OUT/session9c.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-200} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            run_p $BIN/test_backend_ops --gtest_filter='*binary*:*conv*:*upsample*:*unary*:BackendOpsCoverage.*'
            run_p $W bench vae --model wan22 --device cuda --height 704 --width 1280 --latent_frames 31 --mode decode --conv_dtype f16 --warmup 0 --repeats 1 --profile
            grep -E "^###|rc=|PASSED|FAILED|decode|peak|conv3d|copy|binary|upsample" "$P" | cut -c1-200 | tail -40 | tee -a "$OUT/summary.txt" ;;
        session10a)  # issue 19's goldens on CUDA (stage: STAGE_FIXTURES=wan22 with test_vae22 test_pipeline_ti2v test_pipeline_moe
                     # test_dit_gpu test_backend_ops), the 32-bit binary rows, TAEHV streaming V2V, the Wan2.2 VAE profile
            log "wan22 goldens on cuda, binary rows, v2v TAEHV, Wan2.2 VAE profile"
            P="$OUT/session10a.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-60} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            run_p $BIN/test_dit_gpu --gtest_filter='DitGoldenGpu.TI2V:DitGoldenGpu.T2V'
            for t in test_vae22 test_pipeline_ti2v test_pipeline_moe; do
                WANRT_TEST_DEVICE=cuda run_p $BIN/$t --gtest_filter='-*Pth*:*Cli*:*CommandLine*'
            done
            run_p $BIN/test_backend_ops --gtest_filter='*inary*'
            run_p $W bench causal --device cuda --cases "" --v2v --vae tae --vae_dtype f16 --chunks 12 --json $OUT/v2v_tae.json
            run_p $W bench vae --model wan22 --device cuda --height 704 --width 1280 --latent_frames 31 --mode decode --conv_dtype f16 --warmup 0 --repeats 1 --profile
            grep -E "^###|rc=|PASSED|FAILED|rel-L2|v2v|VAE stream|DiT stream|first|decode|peak|conv3d|copy|binary" "$P" | cut -c1-220 | tail -80 | tee -a "$OUT/summary.txt" ;;
        session11)  # what session 10 built without a GPU: channels-last TAEHV (17), u8 serve frames (20), VAE half
                    # activations (17, 19); stage STAGE_TESTS="test_backend_ops test_taehv test_vae test_vae22 test_serve" (with
                    # STAGE_FIXTURES=wan22 and STAGE_FIXTURE_FILES="vae22.safetensors taehv.safetensors vae.safetensors"; add
                    # test_serve), then run `session10` for the serve and V2V rows with the 1.3B model
            log "channels-last TAEHV, u8 serve ops, VAE half activations"
            P="$OUT/session11.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-120} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            run_p $BIN/test_backend_ops --gtest_filter='*conv*:*upsample*:*rgb8*:*norm*:*inary*:*nary*'
            for t in test_taehv test_vae test_vae22; do
                WANRT_TEST_DEVICE=cuda run_p $BIN/$t --gtest_filter='-*Pth*:*Cli*:*CommandLine*'
            done
            WANRT_TEST_DEVICE=cuda run_p $BIN/test_serve --gtest_filter='*StreamPipeline*'
            for f in jpeg raw; do
                run_p $W bench serve --device cuda --width 832 --height 480 --steps 2 --chunks 40 --format $f --json $OUT/serve_u8_$f.json
            done
            for l in ncdhw ndhwc; do
                for m in decode encode stream; do
                    run_p $W bench vae --vae tae --device cuda --height 480 --width 832 --latent_frames 21 --mode $m --conv_dtype f16 --tae_layout $l
                done
                run_p $W bench vae --vae tae --device cuda --height 480 --width 832 --latent_frames 21 --mode decode --conv_dtype f32 --tae_layout $l
            done
            for a in "" --f32_activations; do  # half activations (vaehalf) against the f32 ones, same machine
                run_p $W bench vae --device cuda --mode both --latent_frames 21 --height 480 --width 832 --conv_dtype f16 --profile $a
                run_p $W bench vae --model wan22 --device cuda --height 704 --width 1280 --latent_frames 31 --mode decode --conv_dtype f16 --warmup 0 --repeats 1 --profile $a
            done
            grep -E "^###|rc=|PASSED|FAILED|decode|encode|stream|peak|conv3d|copy|binary|norm|unary|overhead|round trip|FPS|parts" "$P" | cut -c1-200 | tail -140 | tee -a "$OUT/summary.txt" ;;
        train-demo)  # issue 23: the demo DiT trained on the device's CPU cores (the backward ops are CPU-only),
                     # as scripts/train_demo.sh does; STEPS (default 3000), TRAIN_SECONDS bound the call. Brings
                     # back the f32 DiT, loss.csv and the last checkpoint in ≤ 15 MB parts (ckpt.part-*;
                     # `cat ckpt.part-* > c.safetensors` to resume from it here).
            log "train the demo DiT on ${THREADS:-16} CPU threads"
            P="$OUT/train.log"; W=$BIN/wanrt; WORK=/tmp/wanrt-demo
            python3 scripts/demo_data.py --out $WORK/clips --size 64 --frames 17 ${DATA_ARGS:-} >> "$P" 2>&1
            resume=(); [[ -f .devcarry/resume.safetensors ]] && resume=(--resume .devcarry/resume.safetensors)
            timeout ${TRAIN_SECONDS:-500} $W train --data $WORK/clips --out $WORK/run --full --demo_dit random \
                --steps ${STEPS:-3000} --batch 4 --lr 1e-3 --schedule cosine --warmup 100 --grad_clip 1.0 \
                --weight_decay 0.01 --seed 0 --save_every ${SAVE_EVERY:-250} --threads ${THREADS:-16} "${resume[@]}" >> "$P" 2>&1
            echo "rc=$?" >> "$P"
            cp $WORK/run/loss.csv $OUT/ 2>/dev/null
            last=$(ls $WORK/run/checkpoint-step-*.safetensors 2>/dev/null | sort | tail -1)
            if [[ -n "$last" ]]; then
                echo "last checkpoint: $last" >> "$P"
                split -b 15M -d "$last" $OUT/ckpt.part-
                # the DiT of that checkpoint, as `convert` writes it from the masters
                [[ -f $WORK/run/diffusion_pytorch_model.safetensors ]] && cp $WORK/run/diffusion_pytorch_model.safetensors $OUT/dit_final.safetensors
            fi
            tail -c 3000 "$P" | tr '\r' '\n' | tail -25 | tee -a "$OUT/summary.txt" ;;
        session12)  # when device time is short: train-demo on cores 4-15 (12 threads) in the background while
                    # session11 and session10 run on cores 0-3 (stage as for session11). Comes back as summary.txt,
                    # logs.tar.gz (every log, loss.csv, the JSON tables), dit_masters.safetensors (the last
                    # checkpoint's f32 DiT, for `wanrt convert`) and ckpt.part-* (the checkpoint, to resume).
            log "train-demo (cores 4-15) beside session11 + session10 (cores 0-3)"
            ( OUT=$OUT/train THREADS=12 SAVE_EVERY=${SAVE_EVERY:-100} TRAIN_SECONDS=${TRAIN_SECONDS:-500} \
                taskset -c 4-15 bash scripts/device_gpu.sh train-demo ) > /dev/null 2>&1 & trainer=$!
            OUT=$OUT/gpu STEP_TIMEOUT=${STEP_TIMEOUT:-80} timeout ${GPU_SECONDS:-430} taskset -c 0-3 \
                bash scripts/device_gpu.sh session11 session10 > /dev/null 2>&1
            wait $trainer
            if ls $OUT/train/ckpt.part-* > /dev/null 2>&1; then
                cat $OUT/train/ckpt.part-* > /tmp/ckpt.safetensors && rm $OUT/train/ckpt.part-*
                checkpoint_out /tmp/ckpt.safetensors $OUT
            fi
            cat $OUT/gpu/summary.txt $OUT/train/summary.txt >> $OUT/summary.txt 2>/dev/null
            rm -f $OUT/train/dit_final.safetensors
            tar czf $OUT/logs.tar.gz -C $OUT gpu train && rm -rf $OUT/gpu $OUT/train ;;
        train-demo-gpu)  # issue 23: the demo DiT trained with --device cuda from its random start on the clips of
                         # scripts/demo_data.py, for TRAIN_SECONDS (500); STEPS (20000), BATCH (4), LR (1e-3) set the
                         # schedule, TRAIN_ARGS adds flags; DEMO_DIT=trained starts from the DiT this build embeds
                         # (assets/demo/dit.safetensors) instead of the random one, to continue an earlier run;
                         # DATA_ARGS goes to scripts/demo_data.py (e.g. "--shape_scale 0.7 --travel 0.74"). VARIANTS="a:FLAGS|b:FLAGS" trains several at once (the
                         # demo leaves the GPU mostly idle), each in run-<name> with its FLAGS and its clips made
                         # with DATA_ARGS_<name> where that is set. EVAL_ARGS (default: 16 clips, the direction
                         # words swapped) scores each run at the start and every save (eval[-<name>].csv). Comes
                         # back as summary.txt, train.log, loss[-<name>].csv (its last column: seconds, so it/s),
                         # eval[-<name>].csv and dit[-<name>].safetensors, the last checkpoint's DiT as f16.
            log "train the demo DiT on the GPU"
            P="$OUT/train.log"; W=$BIN/wanrt; WORK=/tmp/wanrt-demo
            clips() {  # the clip folder for demo_data.py arguments $1, made (and its cache filled) once
                local d=$WORK/clips-$(echo "$1" | md5sum | cut -c1-8)
                if [[ ! -d $d ]]; then
                    echo "### demo_data.py $1 -> $d" >> "$P"
                    python3 scripts/demo_data.py --out $d --size 64 --frames 17 $1 >> "$P" 2>&1
                    $W train --device cuda --data $d --out $WORK/cache-warm --full --demo_dit random --steps 1 \
                        --batch 1 >> "$P" 2>&1  # fills the latent/text cache once, before runs share it
                fi
                echo $d
            }
            IFS='|' read -ra vs <<< "${VARIANTS:-:}"
            for v in "${vs[@]}"; do
                n=${v%%:*}; a=${v#*:}; sfx=${n:+-$n}
                dv=DATA_ARGS_$n; data=$(clips "${!dv-${DATA_ARGS:-}}")
                echo "### train --device cuda $sfx: ${TRAIN_ARGS:-} $a (data ${!dv-${DATA_ARGS:-}})" >> "$P"
                ( timeout ${TRAIN_SECONDS:-500} $W train --device cuda --data $data --out $WORK/run$sfx --full \
                    --demo_dit ${DEMO_DIT:-random} --steps ${STEPS:-20000} --batch ${BATCH:-4} --lr ${LR:-1e-3} --schedule cosine \
                    --warmup ${WARMUP:-100} --grad_clip 1.0 --weight_decay 0.01 --seed 0 --save_every ${SAVE_EVERY:-500} \
                    ${EVAL_ARGS---eval_clips 16 --eval_swap left:right,right:left,up:down,down:up} \
                    ${TRAIN_ARGS:-} $a > $WORK/train$sfx.log 2>&1; echo "rc$sfx=$?" >> $WORK/train$sfx.log ) &
            done
            wait
            for v in "${vs[@]}"; do
                n=${v%%:*}; sfx=${n:+-$n}
                cat $WORK/train$sfx.log >> "$P"
                cp $WORK/run$sfx/loss.csv $OUT/loss$sfx.csv 2>/dev/null
                cp $WORK/run$sfx/eval.csv $OUT/eval$sfx.csv 2>/dev/null
                last=$(ls $WORK/run$sfx/checkpoint-step-*.safetensors 2>/dev/null | sort | tail -1)
                if [[ -n "$last" ]]; then
                    echo "last checkpoint$sfx: $last" >> "$P"
                    $W convert "$last" $OUT/dit$sfx.safetensors --type f16 >> "$P" 2>&1
                fi
                tail -n 1 $OUT/loss$sfx.csv 2>/dev/null | sed "s/^/loss$sfx.csv last row (step,loss,lr,grad,seconds): /" >> "$P"
            done
            tr '\r' '\n' < "$P" | grep -E "^###|rc|step |train:|last|wanrt:" | tail -70 | tee -a "$OUT/summary.txt" ;;
        demo-direction)  # issue 23 (docs/training.md, session 21): does the demo DiT make coherent motion at all?
                         # Two sets of "a red circle moving … on a blue background" clips (demo_data.write_clip,
                         # shape_scale 0.7, travel 0.74, 16 paths per direction): L = left only, D = all four
                         # directions. Both train side by side from the random DiT (batch 32, lr 1e-3 cosine to
                         # 6,000) for TRAIN_SECONDS (290); D is scored with the direction words swapped. Comes back
                         # as dit-L/dit-D.safetensors (f16: copy one to assets/demo/dit.safetensors, configure,
                         # build, then `wanrt generate --prompt "a red circle moving left on a blue background"`
                         # and follow the red centroid frame by frame), eval-D.csv and train-L/D.txt.
            log "demo direction check: one-direction and four-direction sets"
            W=$ROOT/$BIN/wanrt
            (cd scripts && python3 -c "
import demo_data as d, os
for nm, dirs in (('L', ['left']), ('D', list(d.DIRECTIONS))):
    o = '/tmp/demo-dir-' + nm
    os.makedirs(o, exist_ok=True)
    for dr in dirs:
        for i in range(16):
            n = 'red-circle-%s-on-blue-%d' % (dr, i)
            d.write_clip(o + '/' + n + '.y4m', n, 'circle', 'red', 'blue', dr, 64, 17, 0.7, 0.74)
            open(o + '/' + n + '.txt', 'w').write('a red circle moving %s on a blue background\\n' % dr)
")
            for v in L D; do
                e=; [[ $v == D ]] && e="--eval_clips 16 --eval_swap left:right,right:left,up:down,down:up"
                timeout ${TRAIN_SECONDS:-290} $W train --device cuda --data /tmp/demo-dir-$v --out /tmp/demo-dir-run-$v \
                    --full --demo_dit random --steps 6000 --batch 32 --lr 1e-3 --schedule cosine --warmup 300 \
                    --grad_clip 1.0 --weight_decay 0.01 --seed 0 --save_every 1000 $e > /tmp/demo-dir-$v.log 2>&1 &
            done
            wait
            for v in L D; do
                last=$(ls /tmp/demo-dir-run-$v/checkpoint-step-*.safetensors 2>/dev/null | sort | tail -1)
                [[ -n "$last" ]] && $W convert "$last" $OUT/dit-$v.safetensors --type f16 > /dev/null
                cp /tmp/demo-dir-run-$v/eval.csv $OUT/eval-$v.csv 2>/dev/null
                tr '\r' '\n' < /tmp/demo-dir-$v.log | grep -E "step|eval|wanrt" | tail -12 > $OUT/train-$v.txt
                { echo "$v: last checkpoint $last"; tail -3 $OUT/train-$v.txt; } | tee -a "$OUT/summary.txt"
            done ;;
        session14)  # issue 23: the CUDA backward rows of the op table and test_train_gpu (the f32 GEMM plans are
                    # now cached), then train-demo-gpu (its variables). Stage with test_backend_ops and
                    # test_train_gpu in STAGE_TESTS. Comes back as train-demo-gpu's files plus checks.log.
            log "CUDA backward checks, then the demo DiT trained on the GPU"
            P="$OUT/checks.log"
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-120} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            run_p $BIN/test_backend_ops \
                --gtest_filter='*cuda_*backward*:*cuda_attention_lse*:*cuda_adamw*:*cuda_sum_rows*:BackendOpsCoverage*'
            run_p $BIN/test_train_gpu
            grep -E "^###|rc=|PASSED|FAILED|Failure|worst" "$P" | cut -c1-220 | tail -30 | tee -a "$OUT/summary.txt"
            OUT=$OUT/train bash scripts/device_gpu.sh train-demo-gpu > /dev/null 2>&1
            cat $OUT/train/summary.txt >> $OUT/summary.txt; rm $OUT/train/summary.txt
            mv $OUT/train/* $OUT/ && rmdir $OUT/train ;;
        session17)  # issue 23's demo training (train-demo-gpu, its variables, cores 0-7) while the 1.3B folder for
                    # issue 20's serve bench is synthesised (cores 8-15: CPU and disk only); then, with the GPU
                    # to itself, V2V with TAEHV and `bench serve` with the 1.3B model (JPEG). Comes back as
                    # train-demo-gpu's files plus gpu.log and the benches' JSON.
            P="$OUT/gpu.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-80} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            ( OUT=$OUT/train taskset -c 0-7 bash scripts/device_gpu.sh train-demo-gpu > /dev/null 2>&1 ) & trainer=$!
            STEP_TIMEOUT=${SYNTH_TIMEOUT:-300} run_p taskset -c 8-15 $W synth --model t2v-1.3B --full_folder --dtype bf16 --out /tmp/t13
            wait $trainer
            cat $OUT/train/summary.txt >> $OUT/summary.txt; rm $OUT/train/summary.txt
            mv $OUT/train/* $OUT/ && rmdir $OUT/train
            run_p $W bench causal --device cuda --cases "" --v2v --vae tae --vae_dtype f16 --chunks 20 --json $OUT/v2v_tae.json
            STEP_TIMEOUT=120 run_p $W bench serve --ckpt_dir /tmp/t13 --device cuda --width 832 --height 480 --steps 2 \
                --chunks 40 --format jpeg --json $OUT/serve13_jpeg.json
            grep -E "^###|rc=|v2v|VAE stream|DiT stream|first|overhead|round trip|FPS|fps|parts|peak" "$P" | cut -c1-200 | \
                tail -50 | tee -a "$OUT/summary.txt" ;;
        train-bench)  # issue 23's speed row: one LoRA rank-32 training step of the 1.3B DiT at 480p, 81 frames
                      # (wanrt bench train at --matmul_precision medium, then high) beside PyTorch's (scripts/bench_torch_train.py:
                      # the official modules, peft-style LoRA, bf16 autocast, checkpointing per block). Needs the
                      # official sources and refbench's wanref.py in .ref/ (git-ignored; the call's carry names it):
                      # `fetch github:Wan-Video/Wan2.1`, `git --git-dir=<its mirror> archive HEAD wan | tar x -C .ref`,
                      # `mkdir -p .ref/refbench && cp ../shared/refbench/wanref.py .ref/refbench/`.
            log "training step 1.3B 480p 81 f: wanrt (medium, high) and PyTorch"
            P="$OUT/train_bench.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-200} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            [[ -x $BIN/test_train_gpu ]] && run_p $BIN/test_train_gpu  # the gradients with and without TF32
            # cuDNN's attention backward against our flash backward, agreement and speed at the 1.3B shape
            [[ -x $BIN/test_cuda_perf_gpu ]] && run_p $BIN/test_cuda_perf_gpu --gtest_filter='*AttentionBackward*'
            # the training ops' table on cuda against float64 (awkward shapes, guard regions)
            [[ -x $BIN/test_backend_ops ]] && run_p $BIN/test_backend_ops --gtest_filter='*cuda_*backward*:*cuda_sum_rows*'
            # TRAIN_BENCH_QUICK=1: one timed step at medium, no peer (a short device budget);
            # TRAIN_BENCH_HIGH=1 adds one step at high (TF32, f32 attention: ≈ 45 s on an H100).
            reps=2; [[ -n "${TRAIN_BENCH_QUICK:-}" ]] && reps=1
            run_p $W bench train --device cuda --matmul_precision medium --warmup 1 --repeats $reps \
                --json $OUT/train_lora_medium.json
            # the same step with its checkpoints in host memory (peak and time against the row above)
            run_p $W bench train --device cuda --offload_checkpoints --warmup 1 --repeats $reps --no_profile \
                --json $OUT/train_lora_offload.json
            if [[ -z "${TRAIN_BENCH_QUICK:-}" ]]; then
                WAN_REF=$ROOT/.ref/wan REFBENCH=$ROOT/.ref/refbench run_p python3 scripts/bench_torch_train.py \
                    --warmup 1 --reps 3 --json $OUT/torch_train_lora.json
            fi
            if [[ -n "${TRAIN_BENCH_HIGH:-}" ]]; then
                run_p $W bench train --device cuda --matmul_precision high --warmup 0 --repeats 1 --no_profile \
                    --json $OUT/train_lora_high.json
            fi
            grep -E "^###|rc=|step|peak|median_ms|Error|error|attention|linear|worst|vs f32|PASSED|FAILED|precision" "$P" | cut -c1-200 | tail -60 | tee -a "$OUT/summary.txt" ;;
        session15)  # issue 23: train-demo-gpu (its variables; DEMO_DIT=trained continues the embedded DiT), then
                    # checks15 in GPU_SECONDS (240). Stage STAGE_FIXTURES=wan22 STAGE_TESTS="test_taehv test_vae22
                    # test_serve" STAGE_FIXTURE_FILES="taehv.safetensors vae22.safetensors" where they fit (a build
                    # that embeds a trained demo DiT puts it in every binary: then stage none). Comes back as
                    # train-demo-gpu's files plus checks15's.
            OUT=$OUT/train bash scripts/device_gpu.sh train-demo-gpu > /dev/null 2>&1
            cat $OUT/train/summary.txt >> $OUT/summary.txt; rm $OUT/train/summary.txt
            mv $OUT/train/* $OUT/ && rmdir $OUT/train
            OUT=$OUT/gpu timeout ${GPU_SECONDS:-240} bash scripts/device_gpu.sh checks15 > /dev/null 2>&1
            grep -E "^###|rc=|PASSED|FAILED|Failure|worst|v2v|VAE stream|DiT stream|first|overhead|round trip|FPS|fps|peak" \
                $OUT/gpu/gpu.log | cut -c1-200 | tail -60 | tee -a "$OUT/summary.txt"
            mv $OUT/gpu/gpu.log $OUT/gpu/*.json $OUT/ 2>/dev/null; rm -rf $OUT/gpu ;;
        checks15)  # the GPU checks still owed to issues 17 and 20: TAEHV and the Wan2.2 VAE on CUDA (not the .pth
                   # tests) and serve's stream pipeline on CUDA where those tests are staged, V2V with TAEHV, serve
                   # with the 1.3B model (JPEG).
            log "TAEHV, Wan2.2 VAE and serve on CUDA; V2V with TAEHV; serve with the 1.3B model"
            P="$OUT/gpu.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-80} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            for t in test_taehv test_vae22 test_serve; do  # those staged
                [[ -x $BIN/$t ]] || continue
                f='-*Pth*:*Cli*:*CommandLine*'; [[ $t == test_serve ]] && f='*StreamPipeline*'
                WANRT_TEST_DEVICE=cuda run_p $BIN/$t --gtest_filter="$f"
            done
            run_p $W bench causal --device cuda --cases "" --v2v --vae tae --vae_dtype f16 --chunks 20 --json $OUT/v2v_tae.json
            # The folder's synthetic umT5-XXL is 11 GB: its own limit (45 s was too short in session 16).
            STEP_TIMEOUT=${SYNTH_TIMEOUT:-150} run_p $W synth --model t2v-1.3B --full_folder --dtype bf16 --out /tmp/t13
            run_p $W bench serve --ckpt_dir /tmp/t13 --device cuda --width 832 --height 480 --steps 2 --chunks 40 \
                --format jpeg --json $OUT/serve13_jpeg.json ;;
        session13)  # issue 23 on the GPU: session14 (the CUDA backward op-table rows, test_train_gpu, then
                    # train-demo-gpu for TRAIN_SECONDS), then session11 and session10 in GPU_SECONDS (300).
                    # Stage as for session14 (and taehv_weights.pth in STAGE_FIXTURE_FILES for test_taehv).
                    # Comes back as session14's files plus logs.tar.gz (session11's and session10's logs).
            OUT=$OUT/s14 bash scripts/device_gpu.sh session14 > /dev/null 2>&1
            cat $OUT/s14/summary.txt >> $OUT/summary.txt; rm $OUT/s14/summary.txt
            mv $OUT/s14/* $OUT/ && rmdir $OUT/s14
            OUT=$OUT/gpu STEP_TIMEOUT=${STEP_TIMEOUT:-80} timeout ${GPU_SECONDS:-300} bash scripts/device_gpu.sh session11 session10 \
                > /dev/null 2>&1
            cat $OUT/gpu/summary.txt >> $OUT/summary.txt 2>/dev/null
            tar czf $OUT/logs.tar.gz -C $OUT gpu && rm -rf $OUT/gpu ;;
        session10)  # issue 17's table: streaming V2V with TAEHV and the Wan VAE (FPS, first-frame latency), whole-clip VAE;
                    # issue 20: serve with the 1.3B streaming model (synthetic full folder) instead of the demo model
            log "v2v TAEHV / Wan VAE, VAE 480p, serve 1.3B"
            P="$OUT/session10.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-200} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            for v in tae wan; do
                run_p $W bench causal --device cuda --cases "" --v2v --vae $v --vae_dtype f16 --chunks 20 --json $OUT/v2v_$v.json
            done
            run_p $W bench vae --device cuda --mode both --latent_frames 21 --height 480 --width 832 --conv_dtype f16 --warmup 1 --repeats 3
            # The folder's synthetic umT5-XXL is 11 GB: its own limit (45 s was too short in session 16).
            STEP_TIMEOUT=${SYNTH_TIMEOUT:-150} run_p $W synth --model t2v-1.3B --full_folder --dtype bf16 --out /tmp/t13
            for f in jpeg raw; do
                run_p $W bench serve --ckpt_dir /tmp/t13 --device cuda --width 832 --height 480 --steps 2 --chunks 40 --format $f --json $OUT/serve13_$f.json
            done
            grep -E "^###|rc=|v2v|VAE stream|DiT stream|first|encode|decode|overhead|round trip|FPS|fps|parts|peak" "$P" | cut -c1-200 | tail -80 | tee -a "$OUT/summary.txt" ;;
        q14)  # issue 15: the 14B DiT from GGUF kept quantized on the device (goals: Q4_K_M ≤ 9 GiB, Q8_0 ≤ 15 GiB resident)
            log "14B GGUF Q4_K_M / Q8_0 resident on cuda"
            P="$OUT/q14.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-300} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            run_p $W synth --model t2v-14B --dtype bf16 --out /tmp/m14
            for q in q4_k_m q8_0; do
                mkdir -p /tmp/g14_$q && cp /tmp/m14/config.json /tmp/g14_$q/
                run_p $W convert /tmp/m14 /tmp/g14_$q/dit_$q.gguf --type $q
                ls -l /tmp/g14_$q >> "$P"
                run_p $W bench dit --device cuda --ckpt_dir /tmp/g14_$q --frames 81 --warmup 0 --repeats 1 --no_profile
                rm -rf /tmp/g14_$q
            done
            rm -rf /tmp/m14
            # issue 16's 14B rows: the bf16 forward, then the same with FP8 block linears, one process
            run_p $W bench dit --device cuda --model t2v-14B --layers 0 --weights_dtype bf16 --linear_dtype fp8 --frames 81 --warmup 1 --repeats 2 --no_profile
            grep -E "^###|rc=|resident|weights|forward|peak|error|GiB" "$P" | cut -c1-200 | tail -40 | tee -a "$OUT/summary.txt" ;;
        session9a)  # issue 20: the serve pipeline on the GPU; issue 19: where the Wan2.2 VAE decode spends its time
            log "serve on cuda, Wan2.2 VAE profile"
            P="$OUT/session9a.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-200} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            for f in jpeg raw; do
                run_p $W bench serve --device cuda --width 832 --height 480 --steps 2 --chunks 40 --format $f --json $OUT/serve_$f.json
            done
            run_p $W bench dit --device cuda --model ti2v-5B --layers 0 --weights_dtype bf16 --frames 121 --height 704 --width 1280 --warmup 1 --repeats 3
            grep -E "^###|rc=|overhead|round trip|FPS|fps|parts|decode|peak|conv|copy|unary|binary|norm|upsample|total|forward|attention|linear|tokens|resident" "$P" | cut -c1-200 | tail -100 | tee -a "$OUT/summary.txt" ;;
        session7c)  # issue 15: a whole 14B 480p generation under --offload (device memory sampled), GGUF DiTs on CUDA
            log "14B generate --offload, GGUF DiT on cuda"
            P="$OUT/session7c.log"; W=$BIN/wanrt
            run_p() { echo "### $*" >> "$P"; timeout ${STEP_TIMEOUT:-200} "$@" >> "$P" 2>&1; echo "rc=$?" >> "$P"; }
            run_p $W synth --model t2v-14B --full_folder --dtype bf16 --out /tmp/w14
            nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/mem.txt & smi=$!
            run_p $W generate --ckpt_dir /tmp/w14 --device cuda --size '832*480' --frame_num 81 --sample_steps 2 \
                --offload --max_vram ${MAX_VRAM:-8G} --save_file /tmp/w14.y4m
            kill $smi; echo "device memory used, sampled every 100 ms: peak $(sort -n /tmp/mem.txt | tail -1) MiB" >> "$P"
            rm -rf /tmp/w14
            run_p $W synth --model t2v-1.3B --dtype bf16 --out /tmp/m13
            for q in q8_0 q4_k_m; do
                mkdir -p /tmp/g_$q && cp /tmp/m13/config.json /tmp/g_$q/
                run_p $W convert /tmp/m13 /tmp/g_$q/dit_$q.gguf --type $q
            done
            for d in /tmp/m13 /tmp/g_q8_0 /tmp/g_q4_k_m; do
                run_p $W bench dit --device cuda --ckpt_dir $d --frames 81 --warmup 1 --repeats 3 --no_profile
            done
            run_p $W bench ops --device cuda --tokens 32760 --only linear_fp8_gemm
            grep -E "^###|rc=|peak|total|load|denoise|decode|weights|forward|error|linear_fp8" "$P" | cut -c1-220 | tail -70 | tee -a "$OUT/summary.txt" ;;
        fuzz-long)  # issue 21's long fuzz run (stage with STAGE_FUZZ=1): all targets in parallel for
                    # FUZZ_SECONDS; a .devcarry/fuzz-corpus.tar.gz (an earlier run's corpus.tar.gz) is resumed
            log "fuzz-long: ${FUZZ_SECONDS:-520} s"
            OUT=$OUT bash scripts/fuzz.sh run-staged "${FUZZ_SECONDS:-520}" > "$OUT/fuzz-long.log" 2>&1
            echo "rc=$?" >> "$OUT/fuzz-long.log"
            grep -E "^\[fuzz\]|rc=" "$OUT/fuzz-long.log" | tee -a "$OUT/summary.txt" ;;
        *) log "unknown step $s" ;;
    esac
done
log "done $(date -u)"
