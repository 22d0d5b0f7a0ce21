#!/usr/bin/env bash
# The GPU benchmark set in one command, well under 8 minutes on one GPU:
#   bash benchmarks/gpu.sh [OUT.md]      (default: $OUT/gpu_results.md when $OUT is set, else ./gpu_results.md)
# Search iteration fused vs naive at fp32 / amp / bf16, 100 and 1000 classes; subnet and CoOp steps
# with the text cut on and off; evaluation throughput with the cut and the text cache, and without. One Markdown
# table with the GPU's name (benchmarks/gpu.py); paste it into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_FILE="${1:-${OUT:-.}/gpu_results.md}"
PYTHON="${PYTHON:-python}"
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: benchmarks/gpu.sh needs a GPU'; print(torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 470 "$PYTHON" benchmarks/gpu.py --out "$OUT_FILE"
