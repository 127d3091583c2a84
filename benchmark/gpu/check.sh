#!/usr/bin/env bash
# The GPU check (issue #15), run on the GPU machine from the repository root
# with benchmark/gpu/bundle carried (see benchmark/gpu/README.md). Nothing is
# built or downloaded there: it unpacks the Node and the build made on the
# CPU machine, points oxinfer at that machine's own PyTorch (torch/lib is the
# libtorch to load), and runs benchmark/torch.mjs with OXINFER_BENCH_DEVICE=cuda.
# Writes $OUT/gpu.json and $OUT/gpu.log. About 2 minutes.
set -euo pipefail
OUT=${OUT:-/tmp/oxinfer-gpu}
mkdir -p "$OUT"
cd "$(dirname "$0")/../.."
B=benchmark/gpu/bundle
NODE=$(mktemp -d)/node
xz -dc "$B/node.xz" > "$NODE" && chmod +x "$NODE"
tar -xJf "$B/built.tar.xz"
mkdir -p node_modules/@oxinfer && ln -sfn ../../packages/torch node_modules/@oxinfer/torch
PY=${PY:-$(command -v python3)}
"$PY" -c 'import torch' 2>/dev/null || PY=/opt/torch/.venv/bin/python
TORCH_DIR=$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
{
  echo "python: $PY"; "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' || true
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
} | tee "$OUT/gpu.log"
export OXINFER_LIBTORCH="$TORCH_DIR" OXINFER_BENCH_PYTHON="$PY" OXINFER_BENCH_DEVICE=cuda OXINFER_BENCH_QUIET_MAX_S=0
# A CUDA session on a CPU-only build must fail with ERR_UNSUPPORTED; here it must load.
OUT_FILE="$OUT/gpu.json" timeout 200 "$NODE" -e "
  import('./benchmark/torch.mjs').then(async (m) => {
    const r = await m.run()
    require('node:fs').writeFileSync(process.env.OUT_FILE, JSON.stringify(r, null, 2))
    console.log(JSON.stringify({ parity: r.parity_max_abs, ratios: r.ratios }, null, 1))
  }).catch((e) => { console.error(e); process.exit(1) })
" 2>&1 | tee -a "$OUT/gpu.log"
