#!/bin/bash
# VPT-deep few-shot: all classes, SHOTS images per class, each of SEEDS (default "1 2 3").
# usage: bash scripts/vpt/few_shot_vpt.sh DATASET SHOTS [KEY VALUE ...]
#   CFG  configs/trainers/VPT/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_4)
# Output: <OUTPUT>/<DATASET>/VPT/<CFG>_<SHOTS>shots/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=VPT CFG=${CFG:-vit_b16_c2_ep5_batch4_4}
few_shot "$@"
