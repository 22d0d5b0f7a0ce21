#!/bin/bash
# DPL training stage (TrainerSubnet), as in the official release.
# usage: bash scripts/trainersubnet/launch_train.sh DATASET OUTPUT_DIR IMG_ALPHA_PATH TXT_ALPHA_PATH SEED SHOTS [KEY VALUE ...]
#    or: bash scripts/trainersubnet/launch_train.sh DATASET OUTPUT_DIR searched_config.json SEED SHOTS [KEY VALUE ...]
#   e.g. bash scripts/trainersubnet/launch_train.sh caltech101 output/fewshot/caltech101 \
#            output/search/caltech101/alpha_e80_img.npy output/search/caltech101/alpha_e80_txt.npy 1 16
# Datasets from $DATA (default ./data); CLIP weights from $CLIP_WEIGHTS when set (MODEL.BACKBONE.PATH).
# A finished run is skipped; an unfinished one resumes from its last checkpoint.
set -e
source "$(dirname "$0")/../dpl/common.sh"
if [ $# -lt 5 ]; then
    sed -n '3,8p' "$0"; exit 2
fi
DATASET=$1; DIR=$2
if [[ "$3" == *.json ]]; then
    PROMPT_OPTS="TRAINER.TRAINERSUBNET.PROMPT_CONFIG $3"; SEED=$4; SHOTS=$5; shift 5
else
    if [ $# -lt 6 ]; then sed -n '3,8p' "$0"; exit 2; fi
    PROMPT_OPTS="TRAINER.TRAINERSUBNET.IMG_ALPHA_PATH $3 TRAINER.TRAINERSUBNET.TXT_ALPHA_PATH $4"
    SEED=$5; SHOTS=$6; shift 6
fi

if is_finished "$DIR"; then
    echo "Training in ${DIR} is finished; skipping (delete the folder to train again)."
    exit 0
fi
YAML=$(dataset_yaml "$DATASET")
$PYTHON train.py \
    --root "$DATA" \
    --seed "$SEED" \
    --trainer TrainerSubnet \
    --dataset-config-file "$YAML" \
    --config-file configs/trainers/TrainerSubnet/${TRAIN_CFG}.yaml \
    --output-dir "$DIR" \
    DATASET.NUM_SHOTS "$SHOTS" \
    $PROMPT_OPTS $(backbone_opts) "$@"
