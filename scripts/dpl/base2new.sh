#!/bin/bash
# DPL base-to-new protocol for one (dataset, seed): search and train on the base half of the
# classes (16 shots), then evaluate the trained prompts on the new half.
# usage: bash scripts/dpl/base2new.sh DATASET SEED [KEY VALUE ...]
#   DATASET        a stem of configs/datasets/, a registered name (any case) or a dataset YAML
#   SEARCH_CFG     configs/trainers/TrainerSupernet/<SEARCH_CFG>.yaml or a YAML path (default fewshot)
#   TRAIN_CFG_B2N  configs/trainers/TrainerSubnet/<TRAIN_CFG_B2N>.yaml or a YAML path (default base2new)
#   KEY VALUE      go to the three stages
# Outputs: <OUTPUT>/base2new/{search,train_base,test_new}/<DATASET>/shots_16/<Trainer>/<cfg>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
usage_unless 2 "$@"
use_dataset "$1"; SEED=$2; shift 2
take_overrides "$@"
SPLIT=$DATASET_TAG/shots_$SHOTS

TRAINER=TrainerSupernet CFG=${SEARCH_CFG:-fewshot}; use_config
SEARCH_DIR=$OUTPUT/base2new/search/$SPLIT/$TRAINER/$CONFIG_TAG/seed$SEED
train_py "$SEARCH_DIR" "$SEED" -- DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES base

TRAINER=TrainerSubnet CFG=${TRAIN_CFG_B2N:-base2new}; use_config
PROMPT=(TRAINER.TRAINERSUBNET.PROMPT_CONFIG "$SEARCH_DIR/searched_config.json")
TRAIN_DIR=$OUTPUT/base2new/train_base/$SPLIT/$TRAINER/$CONFIG_TAG/seed$SEED
train_py "$TRAIN_DIR" "$SEED" -- DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES base "${PROMPT[@]}"
evaluate "$OUTPUT/base2new/test_new/$SPLIT/$TRAINER/$CONFIG_TAG/seed$SEED" "$TRAIN_DIR" "$SEED" \
    DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES new "${PROMPT[@]}"
