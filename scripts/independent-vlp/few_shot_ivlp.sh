#!/bin/bash
# IVLP few-shot: all classes, SHOTS images per class, each of SEEDS (default "1 2 3").
# usage: bash scripts/independent-vlp/few_shot_ivlp.sh DATASET SHOTS [KEY VALUE ...]
#   CFG  configs/trainers/IVLP/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_2+2ctx)
# Output: <OUTPUT>/<DATASET>/IVLP/<CFG>_<SHOTS>shots/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=IVLP CFG=${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}
few_shot "$@"
