#!/bin/bash
# IVLP: evaluate released (or any) base-to-new weights on the base and the new classes.
# usage: bash scripts/language-prompting/reproduce_lp.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
#   WEIGHTSPATH/base2new/train_base/<dataset>/shots_16/IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only/seed<SEED>/<folder>/model.pth.tar-5,
#   the releases' layout (a whole-model checkpoint loads: its prompts are taken, docs/baselines.md).
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
WEIGHTSPATH=$3
shift 3
CFG=vit_b16_c2_ep5_batch4_4ctx_language_only
SHOTS=16
LOADEP=${LOADEP:-5}

COMMON_DIR=${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
for SUB in base new; do
    $PYTHON train.py --root ${DATA} --seed ${SEED} --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir ${OUTPUT}/reproduce/test_${SUB}/${COMMON_DIR} --model-dir ${WEIGHTSPATH}/base2new/train_base/${COMMON_DIR} \
    --load-epoch ${LOADEP} --eval-only DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES ${SUB} "${WEIGHTS[@]}" "$@"
done
