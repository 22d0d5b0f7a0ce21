#!/bin/bash
# DePT cross-dataset transfer / domain generalisation, step 1: train METHOD + the CAT head on
# SOURCE (default imagenet), 16 shots, all classes.
# usage: bash scripts/dept/xd_train.sh METHOD SEED [KEY VALUE ...]
#   e.g. bash scripts/dept/xd_train.sh maple 1
# METHOD: coop, cocoop, kgcoop, maple (the release's ExtrasLinearProbe* trainers and YAMLs),
#   promptsrc or dpl (TRAINER.DEPT.ENABLED True over PromptSRC / TrainerSubnet; folder <cfg>_dept);
#   CFG, SEARCH_CFG, PROMPT_CONFIG: scripts/dept/variants.sh
# Output: <OUTPUT>/<SOURCE>/<Trainer>/<cfg>_16shots/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
source "$(dirname "$0")/variants.sh"
usage_unless 2 "$@"
dept_variant "$1" xd; shift
if [ "$METHOD" = dpl ]; then take_overrides "${@:2}"; dpl_subnet xd "$SOURCE" "$1" run; fi
xd_train "$SOURCE" "$@"
