#!/bin/bash
# KgCoOp few-shot on ALL classes (the release's xd_train.sh, KgCoOp #4): 4 shots, W 8.0, batch 32
# (the maintainer's advice for few-shot; the YAML's 128 is the base-to-new batch), each of SEEDS
# (default "1 2 3"), on every dataset given (default: the 11 of the release's loop).
# usage: bash scripts/kgcoop/xd_train.sh [DATASET ...] [-- KEY VALUE ...]
#   e.g. bash scripts/kgcoop/xd_train.sh dtd eurosat -- OPTIM.MAX_EPOCH 50
#   W (8.0), SHOTS (4), BATCH (32), CFG (configs/trainers/KgCoOp/<CFG>.yaml or a YAML path,
#   default vit_b16_ep100_ctxv1): environment
# Output: <OUTPUT>/xd/<DATASET>/shots_<SHOTS>_<W>/KgCoOp/<CFG>/seed<S> (the release wrote
# output_1120_xd/base2new/train_base/<DATASET>/...: these runs use all classes, not the base half)
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
NUM_SHOTS=${SHOTS:-4}
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=KgCoOp CFG=${CFG:-vit_b16_ep100_ctxv1} W=${W:-8.0} BATCH=${BATCH:-32}
NAMES=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do NAMES+=("$1"); shift; done
if [ "${1:-}" = "--" ]; then shift; fi
if [ ${#NAMES[@]} -eq 0 ]; then
    NAMES=(dtd eurosat fgvc_aircraft food101 oxford_flowers oxford_pets stanford_cars ucf101 caltech101 sun397 imagenet)
fi
use_config; take_overrides "$@"
for NAME in "${NAMES[@]}"; do
    use_dataset "$NAME"
    for SEED in $SEEDS; do
        train_py "$OUTPUT/xd/$DATASET_TAG/shots_${NUM_SHOTS}_$W/$TRAINER/$CONFIG_TAG/seed$SEED" "$SEED" \
            -- TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.W "$W" TRAINER.COOP.CLASS_TOKEN_POSITION end \
            DATASET.NUM_SHOTS "$NUM_SHOTS" DATALOADER.TRAIN_X.BATCH_SIZE "$BATCH"
    done
done
