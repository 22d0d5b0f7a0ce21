#!/bin/bash
# DePT base-to-new, step 2: evaluate base2new_train.sh's run (its last epoch) on the new half of
# the classes (the CAT head knows only the base classes: the new ones get the method's own logits).
# usage: bash scripts/dept/base2new_test.sh METHOD DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/dept/base2new_test.sh coop oxford_pets 1
# METHOD: coop, cocoop, kgcoop, maple (the release's ExtrasLinearProbe* trainers and YAMLs),
#   promptsrc or dpl (TRAINER.DEPT.ENABLED True over PromptSRC / TrainerSubnet; folder <cfg>_dept);
#   CFG, SEARCH_CFG, PROMPT_CONFIG: scripts/dept/variants.sh
# Output: <OUTPUT>/base2new/test_new/<DATASET>/shots_16/<Trainer>/<cfg>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
source "$(dirname "$0")/variants.sh"
usage_unless 3 "$@"
dept_variant "$1" b2n; shift
if [ "$METHOD" = dpl ]; then dpl_subnet b2n "$1" "$2" keep; fi
base2new_test "$@"
