#!/bin/bash
# VPT few-shot: all classes, SHOTS images per class, seeds 1-3.
# usage: bash scripts/vpt/few_shot_vpt.sh DATASET SHOTS [KEY VALUE ...]
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
PYTHON=${PYTHON:-python}
OUTPUT=${OUTPUT:-output}  # the folder of every run
WEIGHTS=()  # $CLIP_WEIGHTS: local CLIP weights (no download)
if [ -n "${CLIP_WEIGHTS:-}" ]; then WEIGHTS=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi
TRAINER=VPT
DATASET=$1
SHOTS=$2
shift 2
CFG=vit_b16_c2_ep5_batch4_4

for SEED in 1 2 3; do
    DIR=${OUTPUT}/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
    if [ -d "$DIR" ]; then
        echo "Results are available in ${DIR}. Skip this job"
    else
        $PYTHON train.py --root ${DATA} --seed ${SEED} --trainer ${TRAINER} \
        --dataset-config-file configs/datasets/${DATASET}.yaml --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
        --output-dir ${DIR} DATASET.NUM_SHOTS ${SHOTS} "${WEIGHTS[@]}" "$@"
    fi
done
