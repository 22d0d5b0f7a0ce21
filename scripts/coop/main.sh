#!/bin/bash
# CoOp few-shot training on all classes, each of SEEDS (default "1 2 3"; CoOp's protocol).
# usage: bash scripts/coop/main.sh DATASET CFG CTP NCTX SHOTS CSC [KEY VALUE ...]
#   e.g. bash scripts/coop/main.sh oxford_pets rn50_ep50 end 16 1 False
#   DATASET  a stem of configs/datasets/, a registered name (any case), a dataset YAML, or "A,B"
#   CFG      configs/trainers/CoOp/<CFG>.yaml or a YAML path
#   CTP      class token position: end, middle or front
#   NCTX     number of context tokens
#   SHOTS    training images per class (1, 2, 4, 8, 16)
#   CSC      class-specific context: True or False
# Output: <OUTPUT>/<DATASET>/CoOp/<CFG>_<SHOTS>shots/nctx<NCTX>_csc<CSC>_ctp<CTP>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
usage_unless 6 "$@"
TRAINER=CoOp CFG=$2
use_dataset "$1"; use_config; CTP=$3; NCTX=$4; NUM_SHOTS=$5; CSC=$6; shift 6; take_overrides "$@"
for SEED in $SEEDS; do
    train_py "$OUTPUT/$DATASET_TAG/$TRAINER/${CONFIG_TAG}_${NUM_SHOTS}shots/nctx${NCTX}_csc${CSC}_ctp${CTP}/seed$SEED" "$SEED" \
        -- TRAINER.COOP.N_CTX "$NCTX" TRAINER.COOP.CSC "$CSC" TRAINER.COOP.CLASS_TOKEN_POSITION "$CTP" \
        DATASET.NUM_SHOTS "$NUM_SHOTS"
done
