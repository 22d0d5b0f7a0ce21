#!/bin/bash
# IVLP base-to-new, step 2: evaluate the base-trained prompts (its last epoch) on the new half.
# usage: bash scripts/independent-vlp/base2new_test_ivlp.sh DATASET SEED [KEY VALUE ...]   (after base2new_train_ivlp.sh)
#   CFG  configs/trainers/IVLP/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_2+2ctx)
# Output: <OUTPUT>/base2new/test_new/<DATASET>/shots_16/IVLP/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=IVLP CFG=${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}
base2new_test "$@"
