#!/bin/bash
# CoCoOp base-to-new, step 2: evaluate the base-trained prompts (its last epoch) on the new half
# of the classes.
# usage: bash scripts/cocoop/base2new_test.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/cocoop/base2new_test.sh oxford_pets 1    (after base2new_train.sh, same CFG)
#   CFG  as for base2new_train.sh
# Output: <OUTPUT>/base2new/test_new/<DATASET>/shots_16/CoCoOp/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=CoCoOp CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
base2new_test "$@"
