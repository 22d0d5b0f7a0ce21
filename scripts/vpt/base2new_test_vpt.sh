#!/bin/bash
# VPT-deep base-to-new, step 2: evaluate the base-trained prompts (its last epoch) on the new half.
# usage: bash scripts/vpt/base2new_test_vpt.sh DATASET SEED [KEY VALUE ...]   (after base2new_train_vpt.sh)
#   CFG  configs/trainers/VPT/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_4)
# Output: <OUTPUT>/base2new/test_new/<DATASET>/shots_16/VPT/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=VPT CFG=${CFG:-vit_b16_c2_ep5_batch4_4}
base2new_test "$@"
