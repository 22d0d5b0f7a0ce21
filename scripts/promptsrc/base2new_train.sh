#!/bin/bash
# PromptSRC base-to-new, step 1: train on the base half of the classes (16 shots, 20 epochs).
# usage: bash scripts/promptsrc/base2new_train.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/base2new_train.sh oxford_pets 1
#   CFG  configs/trainers/PromptSRC/<CFG>.yaml or a YAML path (default vit_b16_c2_ep20_batch4_4+4ctx)
# Output: <OUTPUT>/base2new/train_base/<DATASET>/shots_16/PromptSRC/<CFG>/seed<SEED>. A resumed run
# ends like an uninterrupted one (the GPA running sum is checkpointed).
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=PromptSRC CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}
base2new_train "$@"
