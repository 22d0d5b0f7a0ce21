#!/bin/bash
# DPL training stage (TrainerSubnet), with the release's arguments.
# usage: bash scripts/trainersubnet/launch_train.sh DATASET OUTPUT_DIR IMG_ALPHA TXT_ALPHA SEED SHOTS [KEY VALUE ...]
#    or: bash scripts/trainersubnet/launch_train.sh DATASET OUTPUT_DIR searched_config.json SEED SHOTS [KEY VALUE ...]
#   e.g. bash scripts/trainersubnet/launch_train.sh caltech101 output/fewshot/caltech101 \
#            output/search/caltech101/alpha_e80_img.npy output/search/caltech101/alpha_e80_txt.npy 1 16
#   DATASET    as for launch_nas.sh (stem, registered name, dataset YAML, or "A,B")
#   TRAIN_CFG  configs/trainers/TrainerSubnet/<TRAIN_CFG>.yaml, or a path to a YAML (default fewshot)
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
usage_unless 5 "$@"
TRAINER=TrainerSubnet CFG=${TRAIN_CFG:-fewshot}
use_dataset "$1"; use_config
DIR=$(abspath "$2")
if [[ "$3" == *.json ]]; then
    PROMPT=(TRAINER.TRAINERSUBNET.PROMPT_CONFIG "$(abspath "$3")"); SEED=$4; NUM_SHOTS=$5; shift 5
else
    usage_unless 6 "$@"
    PROMPT=(TRAINER.TRAINERSUBNET.IMG_ALPHA_PATH "$(abspath "$3")" TRAINER.TRAINERSUBNET.TXT_ALPHA_PATH "$(abspath "$4")")
    SEED=$5; NUM_SHOTS=$6; shift 6
fi
take_overrides "$@"
train_py "$DIR" "$SEED" -- DATASET.NUM_SHOTS "$NUM_SHOTS" "${PROMPT[@]}"
