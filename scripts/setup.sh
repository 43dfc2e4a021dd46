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
  ccache                       # faster rebuilds (optional at build time)
  python3-dev pybind11-dev python3-numpy python3-pytest   # Python bindings (python/) and their tests
  python3-setuptools python3-wheel python3-venv python3-pip   # pip install . without network
)

missing=()
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
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
