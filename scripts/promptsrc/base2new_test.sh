#!/bin/bash
# PromptSRC base-to-new, step 2: evaluate the base-trained prompts (its last epoch, the GPA model)
# on the new half of the classes.
# usage: bash scripts/promptsrc/base2new_test.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/base2new_test.sh oxford_pets 1   (after base2new_train.sh)
#   CFG  as for base2new_train.sh
# Output: <OUTPUT>/base2new/test_new/<DATASET>/shots_16/PromptSRC/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=PromptSRC CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}
base2new_test "$@"
