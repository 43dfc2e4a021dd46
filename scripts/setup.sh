#!/usr/bin/env bash
# Installs the Debian 12 packages wanrt builds and tests with. Idempotent: already-installed
# packages are skipped, so a second run costs one dpkg query.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev              # f32 GEMM (pthread variant)
  nlohmann-json3-dev           # safetensors headers, config.json
  libgtest-dev libgmock-dev    # tests
  libsentencepiece-dev sentencepiece   # umT5 tokenizer; spm_train for tokenizer tests
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg   # video output, ffprobe in tests
  libcli11-dev                 # command line
  libboost-dev                 # Beast/Asio (header-only): wanrt serve's HTTP and WebSocket
  libturbojpeg0-dev libpng-dev libgmime-3.0-dev   # wanrt serve: JPEG/PNG uploads and frames, multipart forms
  ccache                       # faster rebuilds (optional at build time)
  # CI jobs beyond `test` (scripts/test.sh): sanitizers and libFuzzer (clang's runtime), the ARM64
  # cross build and its qemu-user run.
  clang llvm libclang-rt-dev lld   # lld links the sanitizer build's test executables
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user
  chromium                     # headless browser: the live page's test (tests/test_serve_page.cpp)
  python3-dev pybind11-dev python3-numpy python3-pytest   # Python bindings (python/) and their tests
  python3-setuptools python3-wheel python3-venv python3-pip   # pip install . without network
)
# arm64 libraries of the cross build, beside the amd64 ones (multiarch, co-installable). Never
# libsentencepiece-dev:arm64: it is not co-installable and would REMOVE the amd64 one (the ARM
# build leaves the tokenizer out instead: cmake/aarch64-linux-gnu.cmake).
# libc6/libstdc++6:arm64 are the runtime the qemu-user run loads (cmake/aarch64-linux-gnu.cmake says
# why not the cross toolchain's own); the -dev packages pull them in, named here for that reason.
ARM64_PKGS=(libopenblas-dev:arm64 libgtest-dev:arm64 libc6:arm64 libstdc++6:arm64)

missing=()
arm64_missing=0
if [ "${WANRT_SETUP_ARM64:-1}" = 1 ]; then
  dpkg --print-foreign-architectures | grep -qx arm64 || arm64_missing=1
  PKGS+=("${ARM64_PKGS[@]}")
fi
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[setup] all ${#PKGS[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "[setup] missing packages: ${missing[*]}; run this script as root (sudo bash scripts/setup.sh) or install them with apt-get" >&2
  exit 1
fi
echo "[setup] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
[ "$arm64_missing" = 1 ] && dpkg --add-architecture arm64
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The cross build must never have pulled the arm64 sentencepiece in place of the amd64 one.
if dpkg-query -W -f='${Architecture}\n' libsentencepiece-dev 2>/dev/null | grep -qv amd64; then
  echo "[setup] libsentencepiece-dev is not the amd64 package any more; reinstall libsentencepiece-dev:amd64" >&2
  exit 1
fi
