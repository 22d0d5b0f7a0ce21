#!/bin/bash
# IVLP base-to-new, step 2: evaluate the base-trained prompts (epoch 5) on the new half of the classes.
# usage: bash scripts/language-prompting/base2new_test_lp.sh DATASET SEED [KEY VALUE ...]   (after base2new_train_lp.sh)
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
PYTHON=${PYTHON:-python}
OUTPUT=${OUTPUT:-output}  # the folder of every run
WEIGHTS=()  # $CLIP_WEIGHTS: local CLIP weights (no download)
if [ -n "${CLIP_WEIGHTS:-}" ]; then WEIGHTS=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi
TRAINER=IVLP
DATASET=$1
SEED=$2
shift 2
CFG=vit_b16_c2_ep5_batch4_4ctx_language_only
SHOTS=16
LOADEP=${LOADEP:-5}
SUB=new

COMMON_DIR=${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
MODEL_DIR=${OUTPUT}/base2new/train_base/${COMMON_DIR}
DIR=${OUTPUT}/base2new/test_${SUB}/${COMMON_DIR}
if [ -d "$DIR" ]; then
    echo "Results are available in ${DIR}. Skip this job"
else
    echo "Run this job and save the output to ${DIR}"
    $PYTHON train.py --root ${DATA} --seed ${SEED} --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir ${DIR} --model-dir ${MODEL_DIR} --load-epoch ${LOADEP} --eval-only \
    DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES ${SUB} "${WEIGHTS[@]}" "$@"
fi
