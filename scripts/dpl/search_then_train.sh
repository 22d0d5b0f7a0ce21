#!/bin/bash
# DPL few-shot protocol for one (dataset, seed, shots): search, then train the searched subnet.
# usage: bash scripts/dpl/search_then_train.sh DATASET SEED SHOTS
#   e.g. for S in 1 2 3; do bash scripts/dpl/search_then_train.sh caltech101 $S 16; done
# Outputs: output/search/<DATASET>/shots_<SHOTS>/TrainerSupernet/<SEARCH_CFG>/seed<SEED>
#          output/fewshot/<DATASET>/shots_<SHOTS>/TrainerSubnet/<TRAIN_CFG>/seed<SEED>
set -e
source "$(dirname "$0")/common.sh"
if [ $# -ne 3 ]; then sed -n '3,6p' "$0"; exit 2; fi
DATASET=$1; SEED=$2; SHOTS=$3

SEARCH_DIR=output/search/${DATASET}/shots_${SHOTS}/TrainerSupernet/${SEARCH_CFG}/seed${SEED}
TRAIN_DIR=output/fewshot/${DATASET}/shots_${SHOTS}/TrainerSubnet/${TRAIN_CFG}/seed${SEED}
bash scripts/trainersupernet/launch_nas.sh "$DATASET" "$SEARCH_DIR" "$SEED" "$SHOTS"
bash scripts/trainersubnet/launch_train.sh "$DATASET" "$TRAIN_DIR" "$SEARCH_DIR/searched_config.json" "$SEED" "$SHOTS"
