#!/bin/bash
# DPL few-shot protocol for one (dataset, seed, shots): search, then train the searched subnet.
# usage: bash scripts/dpl/search_then_train.sh DATASET SEED SHOTS [KEY VALUE ...]
#   e.g. for S in 1 2 3; do bash scripts/dpl/search_then_train.sh caltech101 $S 16; done
#   DATASET     a stem of configs/datasets/, a registered name (any case), a dataset YAML, or "A,B"
#   SEARCH_CFG  configs/trainers/TrainerSupernet/<SEARCH_CFG>.yaml or a YAML path (default fewshot)
#   TRAIN_CFG   configs/trainers/TrainerSubnet/<TRAIN_CFG>.yaml or a YAML path (default fewshot)
#   KEY VALUE   go to both stages
# Outputs: <OUTPUT>/search/<DATASET>/shots_<SHOTS>/TrainerSupernet/<SEARCH_CFG>/seed<SEED>
#          <OUTPUT>/fewshot/<DATASET>/shots_<SHOTS>/TrainerSubnet/<TRAIN_CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
usage_unless 3 "$@"
use_dataset "$1"; SEED=$2; NUM_SHOTS=$3; shift 3
take_overrides "$@"

TRAINER=TrainerSupernet CFG=${SEARCH_CFG:-fewshot}; use_config
SEARCH_DIR=$OUTPUT/search/$DATASET_TAG/shots_$NUM_SHOTS/$TRAINER/$CONFIG_TAG/seed$SEED
train_py "$SEARCH_DIR" "$SEED" -- DATASET.NUM_SHOTS "$NUM_SHOTS"

TRAINER=TrainerSubnet CFG=${TRAIN_CFG:-fewshot}; use_config
train_py "$OUTPUT/fewshot/$DATASET_TAG/shots_$NUM_SHOTS/$TRAINER/$CONFIG_TAG/seed$SEED" "$SEED" \
    -- DATASET.NUM_SHOTS "$NUM_SHOTS" TRAINER.TRAINERSUBNET.PROMPT_CONFIG "$SEARCH_DIR/searched_config.json"
