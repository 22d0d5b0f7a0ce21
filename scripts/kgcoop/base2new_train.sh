#!/bin/bash
# KgCoOp base-to-new, step 1: train on the base half of the classes (16 shots), seeds 1-3.
# usage: bash scripts/kgcoop/base2new_train.sh DATASET W [KEY VALUE ...]
#   e.g. bash scripts/kgcoop/base2new_train.sh oxford_pets 8.0
#   DATASET  a file configs/datasets/DATASET.yaml
#   W        weight of the KgCoOp term (the release's scripts: 8.0; DePT's re-run: 2.0 with
#            CFG=vit_b16_ep10_ctxv1_bs4_lr35)
#   KEY VALUE  extra config overrides, e.g. TRAINER.KGCOOP.LEGACY_COS2 True (the paper-era schedule)
# Environment: DATA (dataset root, default ./data), CFG (configs/trainers/KgCoOp/CFG.yaml, default
# vit_b16_ep100_ctxv1), CLIP_WEIGHTS (a local CLIP file), SEEDS (default "1 2 3"), PYTHON.
# Output: output/base2new/train_base/<DATASET>/shots_16_<W>/KgCoOp/<CFG>/seed<S> (the release's layout).
# A finished run is skipped; an unfinished one is started again and resumes from its checkpoints.
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
NCTX=4  # the release's scripts pass it; CTX_INIT True fixes 4 tokens anyway
CSC=False
CTP=end
BACKBONE=()
if [ -n "${CLIP_WEIGHTS:-}" ]; then BACKBONE=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi

for SEED in $SEEDS
do
    DIR=output/base2new/train_base/${DATASET}/shots_${SHOTS}_${W}/${TRAINER}/${CFG}/seed${SEED}
    if grep -qs "^Elapsed:" "$DIR"/log.txt*; then
        echo "Results are available in ${DIR}. Skip this job"
        continue
    fi
    echo "Run this job and save the output to ${DIR}"
    $PYTHON train.py \
    --root "$DATA" \
    --seed "$SEED" \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir "$DIR" \
    TRAINER.COOP.N_CTX ${NCTX} \
    TRAINER.COOP.CSC ${CSC} \
    TRAINER.COOP.W "$W" \
    TRAINER.COOP.CLASS_TOKEN_POSITION ${CTP} \
    DATASET.NUM_SHOTS ${SHOTS} \
    DATASET.SUBSAMPLE_CLASSES base \
    "${BACKBONE[@]}" "$@"
done
