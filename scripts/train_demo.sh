#!/usr/bin/env bash
# Makes the trained demo model's DiT (docs/training.md, "The trained demo"): the procedural clips of
# scripts/demo_data.py, `wanrt train --full` of the demo DiT from its random start through the
# constructed demo VAE, then f16 into assets/demo/dit.safetensors (embedded by the next build), and
# the committed test frames tests/data/demo/*.y4m from the rebuilt program.
#   bash scripts/train_demo.sh            # WANRT=build/wanrt WORK=/tmp/wanrt-demo STEPS=... THREADS=...
# DEVICE=cuda BATCH=16 trains on the GPU (44 it/s on an H100 against 2.2 on a 2-core CPU; docs/training.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
WANRT=${WANRT:-$BUILD/wanrt}
WORK=${WORK:-/tmp/wanrt-demo}
STEPS=${STEPS:-3000}
THREADS=${THREADS:-0}
DEVICE=${DEVICE:-cpu}
BATCH=${BATCH:-4}
python3 scripts/demo_data.py --out "$WORK/clips" --size 64 --frames 17
"$WANRT" train --data "$WORK/clips" --out "$WORK/run" --full --demo_dit random --steps "$STEPS" \
    --device "$DEVICE" --batch "$BATCH" --lr 1e-3 --schedule cosine --warmup 100 --grad_clip 1.0 \
    --weight_decay 0.01 --caption_dropout 0.1 --seed 0 --save_every 500 --threads "$THREADS"
mkdir -p assets/demo
"$WANRT" convert "$WORK/run/diffusion_pytorch_model.safetensors" assets/demo/dit.safetensors --type f16
# The embedded file is found at configure time: configure again, then rebuild with it.
cmake -S . -B "$BUILD" > /dev/null
cmake --build "$BUILD" --target wanrt
mkdir -p tests/data/demo
"$WANRT" generate --prompt "a red circle moving left on a blue background" --base_seed 42 \
    --save_file tests/data/demo/red-circle-left-on-blue.y4m
"$WANRT" generate --prompt "a yellow square moving down on a black background" --base_seed 42 \
    --save_file tests/data/demo/yellow-square-down-on-black.y4m
