#!/bin/bash
# DePT base-to-new, step 1: train METHOD + the CAT head on the base half of the classes (16 shots).
# usage: bash scripts/dept/base2new_train.sh METHOD DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/dept/base2new_train.sh coop oxford_pets 1
# METHOD: coop, cocoop, kgcoop, maple (the release's ExtrasLinearProbe* trainers and YAMLs),
#   promptsrc or dpl (TRAINER.DEPT.ENABLED True over PromptSRC / TrainerSubnet; folder <cfg>_dept);
#   CFG, SEARCH_CFG, PROMPT_CONFIG: scripts/dept/variants.sh
# Output: <OUTPUT>/base2new/train_base/<DATASET>/shots_16/<Trainer>/<cfg>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
source "$(dirname "$0")/variants.sh"
usage_unless 3 "$@"
dept_variant "$1" b2n; shift
if [ "$METHOD" = dpl ]; then take_overrides "${@:3}"; dpl_subnet b2n "$1" "$2" run; fi
base2new_train "$@"
