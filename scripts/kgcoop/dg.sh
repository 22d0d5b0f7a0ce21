#!/bin/bash
# KgCoOp domain generalisation: train on ImageNet (16 shots, all classes), then evaluate the prompts
# on ImageNetV2, -Sketch, -A and -R; seeds 1-3. The release has no such script; the maintainer's
# (KgCoOp #8) loads epoch 25 of an ImageNet run that is not released: here that run is the release's
# recipe with OPTIM.MAX_EPOCH EPOCHS (default 25).
# usage: bash scripts/kgcoop/dg.sh [W] [KEY VALUE ...]      (W default 8.0)
# Environment: DATA (default ./data), EPOCHS (25), CFG (vit_b16_ep100_ctxv1), CLIP_WEIGHTS,
# SEEDS (default "1 2 3"), PYTHON.
# Output: output/dg/imagenet/shots_16_<W>/KgCoOp/<CFG>_ep<EPOCHS>/seed<S> (training) and
# output/evaluation/KgCoOp/<CFG>_16shots_<W>/<target>/seed<S> (the maintainer's layout).
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
PYTHON=${PYTHON:-python}
CFG=${CFG:-vit_b16_ep100_ctxv1}
SEEDS=${SEEDS:-1 2 3}
EPOCHS=${EPOCHS:-25}
TRAINER=KgCoOp
W=${1:-8.0}
if [ $# -gt 0 ]; then shift; fi
SHOTS=16
PROMPT_OPTS=(TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.CLASS_TOKEN_POSITION end)
BACKBONE=()
if [ -n "${CLIP_WEIGHTS:-}" ]; then BACKBONE=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi

for SEED in $SEEDS
do
    SOURCE=output/dg/imagenet/shots_${SHOTS}_${W}/${TRAINER}/${CFG}_ep${EPOCHS}/seed${SEED}
    if grep -qs "^Elapsed:" "$SOURCE"/log.txt*; then
        echo "Results are available in ${SOURCE}. Skip this job"
    else
        echo "Run this job and save the output to ${SOURCE}"
        $PYTHON train.py --root "$DATA" --seed "$SEED" --trainer ${TRAINER} \
        --dataset-config-file configs/datasets/imagenet.yaml \
        --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
        --output-dir "$SOURCE" \
        "${PROMPT_OPTS[@]}" TRAINER.COOP.W "$W" DATASET.NUM_SHOTS ${SHOTS} OPTIM.MAX_EPOCH "$EPOCHS" \
        "${BACKBONE[@]}" "$@"
    fi
    for TARGET in imagenetv2 imagenet_sketch imagenet_a imagenet_r
    do
        DIR=output/evaluation/${TRAINER}/${CFG}_${SHOTS}shots_${W}/${TARGET}/seed${SEED}
        if grep -qs "^\* accuracy" "$DIR"/log.txt*; then
            echo "Results are available in ${DIR}. Skip this job"
            continue
        fi
        echo "Run this job and save the output to ${DIR}"
        $PYTHON train.py --root "$DATA" --seed "$SEED" --trainer ${TRAINER} \
        --dataset-config-file configs/datasets/${TARGET}.yaml \
        --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
        --output-dir "$DIR" --model-dir "$SOURCE" --load-epoch "$EPOCHS" --eval-only \
        "${PROMPT_OPTS[@]}" "${BACKBONE[@]}" "$@"
    done
done
