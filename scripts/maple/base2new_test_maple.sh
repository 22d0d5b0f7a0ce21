#!/bin/bash
# MaPLe base-to-new, step 2: evaluate the base-trained prompts (its last epoch) on the new half.
# usage: bash scripts/maple/base2new_test_maple.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/maple/base2new_test_maple.sh oxford_pets 1   (after base2new_train_maple.sh)
#   CFG  as for base2new_train_maple.sh
# Output: <OUTPUT>/base2new/test_new/<DATASET>/shots_16/MaPLe/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=MaPLe CFG=${CFG:-vit_b16_c2_ep5_batch4_2ctx}
base2new_test "$@"
