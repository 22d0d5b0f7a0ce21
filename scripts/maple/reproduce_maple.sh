#!/bin/bash
# Evaluate the released MaPLe base-to-new weights (epoch 5) on the base and the new classes.
# usage: bash scripts/maple/reproduce_maple.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
#   e.g. bash scripts/maple/reproduce_maple.sh oxford_pets 1 /path/to/maple_weights/oxford_pets
# WEIGHTSPATH is the release's folder of one dataset: WEIGHTSPATH/base/seed<SEED>/
# MultiModalPromptLearner/model.pth.tar-5 (a whole-model checkpoint; its prompts are loaded and its
# frozen CLIP is checked against MODEL.BACKBONE). Outputs as base2new_test_maple.sh:
# output/base2new/test_{base,new}/<DATASET>/shots_16/MaPLe/<CFG>/seed<SEED>.
# An evaluation whose log already holds an accuracy is skipped (delete its folder to rerun).
# Environment: DATA, OUTPUT, CLIP_WEIGHTS, PYTHON as for training; LOADEP (the epoch to load).
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
PYTHON=${PYTHON:-python}
OUTPUT=${OUTPUT:-output}  # the folder of every run
WEIGHTS=()  # $CLIP_WEIGHTS: local CLIP weights (MODEL.BACKBONE.PATH, no download)
if [ -n "${CLIP_WEIGHTS:-}" ]; then WEIGHTS=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi
TRAINER=MaPLe

DATASET=$1
SEED=$2
WEIGHTSPATH=$3
shift 3

CFG=vit_b16_c2_ep5_batch4_2ctx
SHOTS=16
LOADEP=${LOADEP:-5}

COMMON_DIR=${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
MODEL_DIR=${WEIGHTSPATH}/base/seed${SEED}
for SUB in base new
do
    DIR=${OUTPUT}/base2new/test_${SUB}/${COMMON_DIR}
    if grep -qs "^\* accuracy" "${DIR}"/log.txt*; then
        echo "Results are available in ${DIR}. Skip this job"
        continue
    fi
    echo "Evaluating ${MODEL_DIR} (epoch ${LOADEP}) on the ${SUB} classes; output in ${DIR}"
    ${PYTHON} train.py \
    --root ${DATA} \
    --seed ${SEED} \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir ${DIR} \
    --model-dir ${MODEL_DIR} \
    --load-epoch ${LOADEP} \
    --eval-only \
    DATASET.NUM_SHOTS ${SHOTS} \
    DATASET.SUBSAMPLE_CLASSES ${SUB} \
    "${WEIGHTS[@]}" "$@"
done
