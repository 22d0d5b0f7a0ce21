#!/bin/bash
# DePT cross-dataset transfer / domain generalisation, step 2: evaluate xd_train.sh's run (its last
# epoch) on DATASET, all its classes (the 10 other datasets, or imagenetv2 / imagenet_sketch /
# imagenet_a / imagenet_r).
# usage: bash scripts/dept/xd_test.sh METHOD DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/dept/xd_test.sh maple caltech101 1
# METHOD: coop, cocoop, kgcoop, maple (the release's ExtrasLinearProbe* trainers and YAMLs),
#   promptsrc or dpl (TRAINER.DEPT.ENABLED True over PromptSRC / TrainerSubnet; folder <cfg>_dept);
#   CFG, SEARCH_CFG, PROMPT_CONFIG: scripts/dept/variants.sh
# Output: <OUTPUT>/evaluation/<Trainer>/<cfg>_16shots/<DATASET>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
source "$(dirname "$0")/variants.sh"
usage_unless 3 "$@"
dept_variant "$1" xd; shift
if [ "$METHOD" = dpl ]; then dpl_subnet xd "$SOURCE" "$2" keep; fi
xd_test "$@"
