#!/usr/bin/env bash
# Installs what the build needs, builds wanrt, and runs the main job: a benchmark of the Wan2.1
# DiT at 1.3B widths on random weights (2 blocks, one 480p latent frame), until the generation
# pipeline lands. Extra arguments go to `wanrt bench dit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWANRT_TESTS=OFF
cmake --build "$BUILD" -j "$(nproc)" --target wanrt
exec "$BUILD/wanrt" bench dit "$@"
