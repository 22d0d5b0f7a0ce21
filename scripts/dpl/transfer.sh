#!/bin/bash
# DPL transfer protocols for one seed: search and train on SOURCE (ImageNet, all classes, 16
# shots), then evaluate the trained prompts on other datasets without further training.
# usage: bash scripts/dpl/transfer.sh xd SEED [KEY VALUE ...]   # cross-dataset: the other 10 CoOp datasets
#        bash scripts/dpl/transfer.sh dg SEED [KEY VALUE ...]   # domain generalisation: ImageNet-V2/-Sketch/-A/-R
#   TARGETS     the datasets to evaluate, "a,b" (default: the protocol's list). Every target whose data
#               folder is under $DATA is evaluated; the others are listed at the end (exit status 1 when
#               a target named in TARGETS was missing, 0 when only some of the default list were)
#   SOURCE      the training dataset (default imagenet)
#   SEARCH_CFG, TRAIN_CFG  as for search_then_train.sh (defaults fewshot)
#   KEY VALUE   go to every stage (search, training, each evaluation)
# Outputs: <OUTPUT>/search|fewshot/<SOURCE>/... (as search_then_train.sh) and
#          <OUTPUT>/<xd|dg>/<target>/shots_16/TrainerSubnet/<TRAIN_CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
usage_unless 2 "$@"
PROTOCOL=$1; SEED=$2; shift 2
case "$PROTOCOL" in
    xd) DEFAULT_TARGETS=caltech101,oxford_pets,stanford_cars,oxford_flowers,food101,fgvc_aircraft,sun397,dtd,eurosat,ucf101 ;;
    dg) DEFAULT_TARGETS=imagenetv2,imagenet_sketch,imagenet_a,imagenet_r ;;
    *) die "the protocol is xd (cross-dataset) or dg (domain generalisation), got '$PROTOCOL'" ;;
esac
IFS=',' read -r -a WANTED <<< "${TARGETS:-$DEFAULT_TARGETS}"
take_overrides "$@"

ANSWER=$(helper present "$DATA" "${WANTED[@]}") || exit 2
PRESENT=(); MISSING=()
while read -r STATE NAME FOLDER; do
    if [ "$STATE" = present ]; then PRESENT+=("$NAME"); else MISSING+=("$NAME (no $FOLDER)"); fi
done <<< "$ANSWER"
[ ${#PRESENT[@]} -gt 0 ] || die "no target has its data under $DATA (${MISSING[*]}); see docs/DATASETS.md"
echo "Targets to evaluate: ${PRESENT[*]}"

use_dataset "$SOURCE"
TRAINER=TrainerSupernet CFG=${SEARCH_CFG:-fewshot}; use_config
SEARCH_DIR=$OUTPUT/search/$DATASET_TAG/shots_$SHOTS/$TRAINER/$CONFIG_TAG/seed$SEED
train_py "$SEARCH_DIR" "$SEED" -- DATASET.NUM_SHOTS "$SHOTS"
TRAINER=TrainerSubnet CFG=${TRAIN_CFG:-fewshot}; use_config
PROMPT=(TRAINER.TRAINERSUBNET.PROMPT_CONFIG "$SEARCH_DIR/searched_config.json")
MODEL_DIR=$OUTPUT/fewshot/$DATASET_TAG/shots_$SHOTS/$TRAINER/$CONFIG_TAG/seed$SEED
train_py "$MODEL_DIR" "$SEED" -- DATASET.NUM_SHOTS "$SHOTS" "${PROMPT[@]}"

for TARGET in "${PRESENT[@]}"; do
    use_dataset "$TARGET"
    evaluate "$OUTPUT/$PROTOCOL/$DATASET_TAG/shots_$SHOTS/$TRAINER/$CONFIG_TAG/seed$SEED" "$MODEL_DIR" "$SEED" \
        "${PROMPT[@]}"
done
if [ ${#MISSING[@]} -gt 0 ]; then
    echo "Not evaluated, their data is not under $DATA:"
    printf '  %s\n' "${MISSING[@]}"
    if [ -n "${TARGETS:-}" ]; then exit 1; fi
fi
