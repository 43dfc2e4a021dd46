#!/usr/bin/env bash
# Installs what the build needs, builds wanrt and its tests, runs the CPU test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWANRT_TESTS=ON
cmake --build "$BUILD" -j "$(nproc)"
ctest --test-dir "$BUILD" -L cpu --output-on-failure -j "$(nproc)"
