#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for rdt-libero: system packages, the Python torch package
# (which provides libtorch), npm dependencies, then builds the native addon and the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

need_apt=()
command -v g++ >/dev/null || need_apt+=(g++)
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
# libav headers: the addon decodes LeRobot datasets' MP4 videos in-process (native/video_decode.cc).
pkg-config --exists libavformat libavcodec libswscale libavutil 2>/dev/null ||
  need_apt+=(pkg-config libavformat-dev libavcodec-dev libswscale-dev libavutil-dev)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

PY="${PYTHON:-python3}"
# torch provides libtorch for the addon and the reference values for the tests; h5py writes
# LIBERO-format files the way the real ones were written; safetensors/numpy check our IO;
# tensorboard reads back the event files the trainer writes; websockets + msgpack + pillow make the Python
# openpi client (with openpi's image resizing) that talks to `rdt-libero serve` in its tests; pyarrow + av (PyAV)
# write LeRobot-format datasets (parquet, MP4) the way LeRobot does and decode its videos as the reference.
if ! "$PY" -c "import torch, h5py, safetensors, numpy, tensorboard, websockets, msgpack, PIL, pyarrow, av" 2>/dev/null; then
  echo "setup: pip install torch h5py safetensors numpy tensorboard websockets msgpack pillow pyarrow av"
  "$PY" -m pip install -q torch h5py safetensors numpy tensorboard websockets msgpack pillow pyarrow av
fi

npm ci --no-audit --no-fund
npm run build
