#!/bin/bash
# Evaluate the released ImageNet-trained MaPLe weights (epoch 2) on a cross-dataset target or an
# ImageNet variant, all classes.
# usage: bash scripts/maple/reproduce_maple_xd.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
#   e.g. bash scripts/maple/reproduce_maple_xd.sh caltech101 1 /path/to/maple_weights/imagenet
# WEIGHTSPATH holds the release's seed<SEED>/MultiModalPromptLearner/model.pth.tar-2. Output as
# xd_test_maple.sh: output/evaluation/MaPLe/<CFG>_16shots/<DATASET>/seed<SEED>.
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

CFG=vit_b16_c2_ep5_batch4_2ctx_cross_datasets
SHOTS=16
LOADEP=${LOADEP:-2}

MODEL_DIR=${WEIGHTSPATH}/seed${SEED}
DIR=${OUTPUT}/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${DATASET}/seed${SEED}
if grep -qs "^\* accuracy" "${DIR}"/log.txt*; then
    echo "Results are available in ${DIR}. Skip this job"
    exit 0
fi
echo "Evaluating ${MODEL_DIR} (epoch ${LOADEP}) on ${DATASET}; output in ${DIR}"
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
    "${WEIGHTS[@]}" "$@"
