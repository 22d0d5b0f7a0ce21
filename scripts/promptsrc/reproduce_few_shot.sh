#!/bin/bash
# PromptSRC: evaluate released few-shot weights for SHOTS shots, each of SEEDS (default "1 2 3").
# usage: bash scripts/promptsrc/reproduce_few_shot.sh DATASET SHOTS WEIGHTSPATH [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/reproduce_few_shot.sh food101 4 /path/to/food101
#   WEIGHTSPATH  holds <SHOTS>shot/seed<SEED>/VLPromptLearner/model.pth.tar-50, as the release ships it
#   CFG          as for few_shot.sh
# Output: <OUTPUT>/few_shot/<DATASET>/PromptSRC/<CFG>_<SHOTS>shots/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=PromptSRC CFG=${CFG:-vit_b16_c2_ep50_batch4_4+4ctx_few_shot}
usage_unless 3 "$@"
use_dataset "$1"; use_config; NUM_SHOTS=$2; WEIGHTS=$(abspath "$3"); shift 3; take_overrides "$@"
for SEED in $SEEDS; do
    evaluate "$OUTPUT/few_shot/$DATASET_TAG/$TRAINER/${CONFIG_TAG}_${NUM_SHOTS}shots/seed$SEED" \
        "$WEIGHTS/${NUM_SHOTS}shot/seed$SEED" "$SEED" DATASET.NUM_SHOTS "$NUM_SHOTS"
done
