#!/bin/bash
# KgCoOp base-to-new, step 1: train on the base half of the classes (16 shots), each of SEEDS
# (default "1 2 3").
# usage: bash scripts/kgcoop/base2new_train.sh DATASET W [KEY VALUE ...]
#   e.g. bash scripts/kgcoop/base2new_train.sh oxford_pets 8.0
#   W          weight of the KgCoOp term (the release's scripts: 8.0; DePT's re-run: 2.0 with
#              CFG=vit_b16_ep10_ctxv1_bs4_lr35)
#   CFG        configs/trainers/KgCoOp/<CFG>.yaml or a YAML path (default vit_b16_ep100_ctxv1)
#   KEY VALUE  e.g. TRAINER.KGCOOP.LEGACY_COS2 True (the paper-era schedule)
# Output: <OUTPUT>/base2new/train_base/<DATASET>/shots_16_<W>/KgCoOp/<CFG>/seed<S> (the release's layout)
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
usage_unless 2 "$@"
TRAINER=KgCoOp CFG=${CFG:-vit_b16_ep100_ctxv1}
use_dataset "$1"; use_config; W=$2; shift 2; take_overrides "$@"
for SEED in $SEEDS; do
    # N_CTX 4 as the release's scripts pass it (CTX_INIT "a photo of a" fixes 4 tokens anyway)
    train_py "$OUTPUT/base2new/train_base/$DATASET_TAG/shots_${SHOTS}_$W/$TRAINER/$CONFIG_TAG/seed$SEED" "$SEED" \
        -- TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.W "$W" TRAINER.COOP.CLASS_TOKEN_POSITION end \
        DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES base
done
