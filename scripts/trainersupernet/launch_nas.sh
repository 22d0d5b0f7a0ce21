#!/bin/bash
# DPL search stage (TrainerSupernet), with the release's arguments.
# usage: bash scripts/trainersupernet/launch_nas.sh DATASET OUTPUT_DIR SEED SHOTS [KEY VALUE ...]
#   e.g. bash scripts/trainersupernet/launch_nas.sh Caltech101 output/search/caltech101 1 16
#   DATASET     a stem of configs/datasets/, a registered name (any case), a dataset YAML, or "A,B"
#               to search several datasets at once
#   SEARCH_CFG  configs/trainers/TrainerSupernet/<SEARCH_CFG>.yaml, or a path to a YAML (default fewshot)
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
usage_unless 4 "$@"
TRAINER=TrainerSupernet CFG=${SEARCH_CFG:-fewshot}
use_dataset "$1"; use_config
DIR=$(abspath "$2"); SEED=$3; NUM_SHOTS=$4; shift 4
take_overrides "$@"
train_py "$DIR" "$SEED" -- DATASET.NUM_SHOTS "$NUM_SHOTS"
