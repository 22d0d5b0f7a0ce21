#!/bin/bash
# KgCoOp domain generalisation: train on SOURCE (default imagenet; 16 shots, all classes), then
# evaluate the prompts on ImageNetV2, -Sketch, -A and -R (or TARGETS="a,b"); each of SEEDS (default
# "1 2 3"). The release has no such script; the maintainer's (KgCoOp #8) loads epoch 25 of an
# ImageNet run that is not released: here that run is the release's recipe with OPTIM.MAX_EPOCH
# EPOCHS (default 25).
# usage: bash scripts/kgcoop/dg.sh [W] [KEY VALUE ...]      (W default 8.0)
#   EPOCHS (25), CFG (configs/trainers/KgCoOp/<CFG>.yaml or a YAML path, default vit_b16_ep100_ctxv1)
# Output: <OUTPUT>/dg/<SOURCE>/shots_16_<W>/KgCoOp/<CFG>_ep<EPOCHS>/seed<S> (training) and
# <OUTPUT>/evaluation/KgCoOp/<CFG>_16shots_<W>/<target>/seed<S> (the maintainer's layout).
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=KgCoOp CFG=${CFG:-vit_b16_ep100_ctxv1} EPOCHS=${EPOCHS:-25}
W=8.0
if [ $# -gt 0 ] && [[ "$1" != *.* || "$1" =~ ^[0-9.]+$ ]]; then W=$1; shift; fi
use_config; take_overrides "$@"
PROMPT=(TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.CLASS_TOKEN_POSITION end)
IFS=',' read -r -a WANTED <<< "${TARGETS:-imagenetv2,imagenet_sketch,imagenet_a,imagenet_r}"
for SEED in $SEEDS; do
    use_dataset "$SOURCE"
    MODEL_DIR=$OUTPUT/dg/$DATASET_TAG/shots_${SHOTS}_$W/$TRAINER/${CONFIG_TAG}_ep$EPOCHS/seed$SEED
    train_py "$MODEL_DIR" "$SEED" -- "${PROMPT[@]}" TRAINER.COOP.W "$W" DATASET.NUM_SHOTS "$SHOTS" OPTIM.MAX_EPOCH "$EPOCHS"
    for TARGET in "${WANTED[@]}"; do
        use_dataset "$TARGET"
        evaluate "$OUTPUT/evaluation/$TRAINER/${CONFIG_TAG}_${SHOTS}shots_$W/$DATASET_TAG/seed$SEED" "$MODEL_DIR" "$SEED" \
            "${PROMPT[@]}"
    done
done
