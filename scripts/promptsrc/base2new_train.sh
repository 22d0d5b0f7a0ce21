#!/bin/bash
# PromptSRC base-to-new, step 1: train on the base half of the classes (16 shots, 20 epochs).
# usage: bash scripts/promptsrc/base2new_train.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/base2new_train.sh oxford_pets 1
# Datasets are read from $DATA (default ./data); trailing KEY VALUE pairs override the config.
# As in the release, an existing output folder is run again: training resumes from its last
# checkpoint (exactly, GPA's running sum included) or, when finished, only re-evaluates.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=PromptSRC

DATASET=$1
SEED=$2

CFG=vit_b16_c2_ep20_batch4_4+4ctx
SHOTS=16

DIR=output/base2new/train_base/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
if [ -d "$DIR" ]; then
    echo "Results are available in ${DIR}. Resuming..."
else
    echo "Run this job and save the output to ${DIR}"
fi
python train.py \
--root ${DATA} \
--seed ${SEED} \
--trainer ${TRAINER} \
--dataset-config-file configs/datasets/${DATASET}.yaml \
--config-file configs/trainers/${TRAINER}/${CFG}.yaml \
--output-dir ${DIR} \
DATASET.NUM_SHOTS ${SHOTS} \
DATASET.SUBSAMPLE_CLASSES base \
"${@:3}"
