#!/usr/bin/env bash
# Installs what the build needs, builds wanrt, and runs the main job: `wanrt generate` with the
# built-in demo model (tiny Wan2.1 text encoder, DiT and VAE with random weights, every stage real),
# writing an H.264 mp4 to out/demo.mp4. Extra arguments go to `wanrt generate`, e.g.
#   bash scripts/run.sh --ckpt_dir /models/Wan2.1-T2V-1.3B --prompt "a cat on a surfboard"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWANRT_TESTS=OFF
cmake --build "$BUILD" -j "$(nproc)" --target wanrt
mkdir -p out
exec "$BUILD/wanrt" generate --save_file out/demo.mp4 --base_seed 42 "$@"
