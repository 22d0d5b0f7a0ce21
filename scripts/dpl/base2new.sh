#!/bin/bash
# DPL base-to-new protocol for one (dataset, seed): search and train on the base half of the
# classes (16 shots), then evaluate the trained prompts on the new half.
# usage: bash scripts/dpl/base2new.sh DATASET SEED
# Outputs under output/base2new/{search,train_base,test_new}/<DATASET>/shots_16/...
set -e
source "$(dirname "$0")/common.sh"
if [ $# -ne 2 ]; then sed -n '3,6p' "$0"; exit 2; fi
DATASET=$1; SEED=$2; SHOTS=16
TRAIN_CFG=${TRAIN_CFG_B2N:-base2new}

COMMON=${DATASET}/shots_${SHOTS}
SEARCH_DIR=output/base2new/search/${COMMON}/TrainerSupernet/${SEARCH_CFG}/seed${SEED}
TRAIN_DIR=output/base2new/train_base/${COMMON}/TrainerSubnet/${TRAIN_CFG}/seed${SEED}
TEST_DIR=output/base2new/test_new/${COMMON}/TrainerSubnet/${TRAIN_CFG}/seed${SEED}
CONFIG=${SEARCH_DIR}/searched_config.json

bash scripts/trainersupernet/launch_nas.sh "$DATASET" "$SEARCH_DIR" "$SEED" "$SHOTS" DATASET.SUBSAMPLE_CLASSES base
TRAIN_CFG=$TRAIN_CFG bash scripts/trainersubnet/launch_train.sh "$DATASET" "$TRAIN_DIR" "$CONFIG" "$SEED" "$SHOTS" \
    DATASET.SUBSAMPLE_CLASSES base
if grep -qs "^\* accuracy" "$TEST_DIR"/log.txt*; then
    echo "Results are available in ${TEST_DIR}. Skip this job"; exit 0
fi
EPOCH=$(ls "$TRAIN_DIR"/MultiModalPromptLearner/model.pth.tar-* | sed 's/.*-//' | sort -n | tail -n 1)
$PYTHON train.py --root "$DATA" --seed "$SEED" --trainer TrainerSubnet \
    --dataset-config-file "$(dataset_yaml "$DATASET")" \
    --config-file configs/trainers/TrainerSubnet/${TRAIN_CFG}.yaml \
    --output-dir "$TEST_DIR" --model-dir "$TRAIN_DIR" --load-epoch "$EPOCH" --eval-only \
    DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES new \
    TRAINER.TRAINERSUBNET.PROMPT_CONFIG "$CONFIG" $(backbone_opts)
