#!/bin/bash
# KgCoOp base-to-new, step 2: evaluate the base-trained prompts (their last epoch) on the new half
# of the classes, each of SEEDS (default "1 2 3").
# usage: bash scripts/kgcoop/base2new_test.sh DATASET W [KEY VALUE ...]
#   e.g. bash scripts/kgcoop/base2new_test.sh oxford_pets 8.0   (after base2new_train.sh, same W and CFG)
#   CFG  as for base2new_train.sh
# Output: <OUTPUT>/base2new/test_new/<DATASET>/shots_16_<W>/KgCoOp/<CFG>/seed<S>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
usage_unless 2 "$@"
TRAINER=KgCoOp CFG=${CFG:-vit_b16_ep100_ctxv1}
use_dataset "$1"; use_config; W=$2; shift 2; take_overrides "$@"
for SEED in $SEEDS; do
    COMMON=$DATASET_TAG/shots_${SHOTS}_$W/$TRAINER/$CONFIG_TAG/seed$SEED
    require_finished "$OUTPUT/base2new/train_base/$COMMON" "run scripts/kgcoop/base2new_train.sh $DATASET_TAG $W first"
    evaluate "$OUTPUT/base2new/test_new/$COMMON" "$OUTPUT/base2new/train_base/$COMMON" "$SEED" \
        TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.CLASS_TOKEN_POSITION end \
        DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES new
done
