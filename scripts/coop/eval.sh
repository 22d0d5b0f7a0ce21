#!/bin/bash
# Evaluate CoOp prompts learned on SOURCE (default imagenet; 16 shots, 16 context tokens, unified
# context, class token at the end; each of SEEDS, default "1 2 3"; the last epoch) on another
# dataset: domain generalisation (imagenetv2, imagenet_sketch, imagenet_a, imagenet_r) or transfer.
# usage: bash scripts/coop/eval.sh DATASET CFG [KEY VALUE ...]
#   e.g. bash scripts/coop/eval.sh imagenet_sketch rn50_ep50
#   NCTX, CSC, CTP  the source run's settings (default 16, False, end), as given to main.sh
# Expects the runs of `scripts/coop/main.sh imagenet CFG end 16 16 False`.
# Output: <OUTPUT>/evaluation/CoOp/<CFG>_16shots/nctx<NCTX>_csc<CSC>_ctp<CTP>/<DATASET>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
usage_unless 2 "$@"
TRAINER=CoOp CFG=$2 NCTX=${NCTX:-16} CSC=${CSC:-False} CTP=${CTP:-end}
use_dataset "$SOURCE"; SOURCE_TAG=$DATASET_TAG
use_dataset "$1"; use_config; shift 2; take_overrides "$@"
PROMPT=nctx${NCTX}_csc${CSC}_ctp${CTP}
for SEED in $SEEDS; do
    MODEL_DIR=$OUTPUT/$SOURCE_TAG/$TRAINER/${CONFIG_TAG}_${SHOTS}shots/$PROMPT/seed$SEED
    require_finished "$MODEL_DIR" "run scripts/coop/main.sh $SOURCE_TAG $CFG $CTP $NCTX $SHOTS $CSC first"
    evaluate "$OUTPUT/evaluation/$TRAINER/${CONFIG_TAG}_${SHOTS}shots/$PROMPT/$DATASET_TAG/seed$SEED" "$MODEL_DIR" "$SEED" \
        TRAINER.COOP.N_CTX "$NCTX" TRAINER.COOP.CSC "$CSC" TRAINER.COOP.CLASS_TOKEN_POSITION "$CTP"
done
