#!/bin/bash
# IVLP: evaluate released (or any) base-to-new weights on the base and the new classes.
# usage: bash scripts/independent-vlp/reproduce_ivlp.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
#   WEIGHTSPATH  holds base2new/train_base/<DATASET>/shots_16/IVLP/<CFG>/seed<SEED>/<folder>/model.pth.tar-5,
#                the releases' layout (a whole-model checkpoint loads: its prompts are taken, docs/baselines.md)
#   CFG  configs/trainers/IVLP/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_2+2ctx)
# Output: <OUTPUT>/reproduce/test_{base,new}/<DATASET>/shots_16/IVLP/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=IVLP CFG=${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}
usage_unless 3 "$@"
use_dataset "$1"; use_config; SEED=$2; WEIGHTS=$(abspath "$3"); shift 3; take_overrides "$@"
COMMON=$DATASET_TAG/shots_$SHOTS/$TRAINER/$CONFIG_TAG/seed$SEED
for SUB in base new; do
    evaluate "$OUTPUT/reproduce/test_$SUB/$COMMON" "$WEIGHTS/base2new/train_base/$COMMON" "$SEED" \
        DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES "$SUB"
done
