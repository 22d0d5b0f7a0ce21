#!/bin/bash
# IVLP base-to-new, step 1: train on the base half of the classes (16 shots).
# usage: bash scripts/independent-vlp/base2new_train_ivlp.sh DATASET SEED [KEY VALUE ...]
#   CFG  configs/trainers/IVLP/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_2+2ctx)
# Output: <OUTPUT>/base2new/train_base/<DATASET>/shots_16/IVLP/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=IVLP CFG=${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}
base2new_train "$@"
