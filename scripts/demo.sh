#!/bin/bash
# The README's main command: zero-shot CLIP, DPL search, subnet training and their accuracies.
# With no arguments it runs offline on CPU on generated data (Toy) and a small random-weight CLIP;
# `--real --dataset NAME --root DATA [--backbone ViT-B/16 | --weights FILE]` runs the release's
# configs on a real dataset. See `python scripts/demo.py --help`.
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
exec "$PYTHON" scripts/demo.py "$@"
