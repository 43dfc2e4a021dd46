#!/usr/bin/env bash
# Installs what the build needs, builds wanrt and its tests, runs the CPU test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD=${BUILD:-build}
# The CUDA backend is compiled wherever the toolkit is installed (CI has no GPU: it builds the
# CUDA code and its GPU tests, and runs the CPU suite; GPU tests carry the label `gpu`).
CUDA=OFF
[ -x /usr/local/cuda/bin/nvcc ] && CUDA=ON
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWANRT_TESTS=ON -DWANRT_CUDA=$CUDA -DWANRT_PYTHON=ON
cmake --build "$BUILD" -j "$(nproc)"
ctest --test-dir "$BUILD" -L cpu --output-on-failure -j "$(nproc)"
