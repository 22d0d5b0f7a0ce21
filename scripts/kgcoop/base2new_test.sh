#!/bin/bash
# KgCoOp base-to-new, step 2: evaluate the base-trained prompts (last epoch) on the new half of
# the classes, seeds 1-3.
# usage: bash scripts/kgcoop/base2new_test.sh DATASET W [KEY VALUE ...]
#   e.g. bash scripts/kgcoop/base2new_test.sh oxford_pets 8.0
# Expects the output of scripts/kgcoop/base2new_train.sh for the same DATASET, W and CFG.
# Environment: as base2new_train.sh, and LOADEP (the epoch to load, default: OPTIM.MAX_EPOCH of CFG,
# 100 for the release's recipe, 10 for DePT's).
# Output: output/base2new/test_new/<DATASET>/shots_16_<W>/KgCoOp/<CFG>/seed<S>
set -e
cd "$(dirname "$0")/../.."
if [ $# -lt 2 ]; then awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 2; fi

DATA=${DATA:-./data}
PYTHON=${PYTHON:-python}
CFG=${CFG:-vit_b16_ep100_ctxv1}
SEEDS=${SEEDS:-1 2 3}
TRAINER=KgCoOp

DATASET=$1
W=$2
shift 2
SHOTS=16
SUB=new
LOADEP=${LOADEP:-$(sed -n 's/^ *MAX_EPOCH: *\([0-9]*\).*/\1/p' configs/trainers/${TRAINER}/${CFG}.yaml)}
BACKBONE=()
if [ -n "${CLIP_WEIGHTS:-}" ]; then BACKBONE=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi

for SEED in $SEEDS
do
    COMMON_DIR=${DATASET}/shots_${SHOTS}_${W}/${TRAINER}/${CFG}/seed${SEED}
    MODEL_DIR=output/base2new/train_base/${COMMON_DIR}
    DIR=output/base2new/test_${SUB}/${COMMON_DIR}
    if grep -qs "^\* accuracy" "$DIR"/log.txt*; then
        echo "Results are available in ${DIR}. Skip this job"
        continue
    fi
    if [ ! -f "${MODEL_DIR}/prompt_learner/model.pth.tar-${LOADEP}" ]; then
        echo "No ${MODEL_DIR}/prompt_learner/model.pth.tar-${LOADEP}: run scripts/kgcoop/base2new_train.sh" \
             "${DATASET} ${W} first (or set LOADEP)." >&2
        exit 1
    fi
    echo "Run this job and save the output to ${DIR}"
    $PYTHON train.py \
    --root "$DATA" \
    --seed "$SEED" \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir "$DIR" \
    --model-dir "$MODEL_DIR" \
    --load-epoch "$LOADEP" \
    --eval-only \
    TRAINER.COOP.N_CTX 4 \
    TRAINER.COOP.CSC False \
    TRAINER.COOP.CLASS_TOKEN_POSITION end \
    DATASET.NUM_SHOTS ${SHOTS} \
    DATASET.SUBSAMPLE_CLASSES ${SUB} \
    "${BACKBONE[@]}" "$@"
done
