#!/usr/bin/env bash
# npm run bench:gpu [-- --batch 8 --rounds 3]: on a machine with an NVIDIA GPU and a CUDA build of torch, build the
# addon against that torch, run `doctor`, then bench/gpu.ts (rdt-1b, random weights: one bf16 mixed-precision
# training step and predictAction, ours against the PyTorch reference on the same GPU; samples/s, latency, peak
# GPU memory, ratios), then bench/nccl.ts (NCCL across every GPU, or 2 ranks on one where NCCL allows it:
# all-reduce bandwidth, a stalled rank's named timeout, data-parallel step time with gradients reduced during
# backward and after it). Without CUDA or a CUDA torch it stops with one line saying what is missing (exit 2).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
fail() { echo "bench:gpu: $*" >&2; exit 2; }

info=$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda or "none", int(torch.cuda.is_available()), torch.cuda.device_count())' 2>/dev/null) \
  || fail "$PY cannot import torch: install a CUDA build of torch (pip install torch --index-url https://download.pytorch.org/whl/cu124)"
read -r ver cudaver avail count <<<"$info"
[ "$cudaver" != none ] || fail "torch $ver is a CPU build: install a CUDA build (pip install torch --index-url https://download.pytorch.org/whl/cu124) and run again"
[ "$avail" = 1 ] && [ "$count" -gt 0 ] || fail "torch $ver (CUDA $cudaver) sees no CUDA device: check nvidia-smi and CUDA_VISIBLE_DEVICES"

log=$(mktemp -t rdt-bench-gpu-build.XXXXXX)
echo "bench:gpu: building the addon against torch $ver (CUDA $cudaver), log in $log" >&2
npm run build >"$log" 2>&1 || fail "building the addon against torch $ver failed: see $log"
grep -q '"cuda": *true' build/libtorch.json || fail "the addon was built without CUDA (build/libtorch.json); is LIBTORCH set to a CPU libtorch?"

node dist/src/cli/main.js doctor || fail "rdt-libero doctor failed"
node dist/bench/gpu.js "$@" || fail "bench/gpu.ts failed (its output is above)"
node dist/bench/nccl.js
