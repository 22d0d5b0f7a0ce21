#!/bin/bash
# PromptSRC base-to-new, step 2: evaluate the base-trained prompts (epoch 20, the GPA model) on
# the new half of the classes.
# usage: bash scripts/promptsrc/base2new_test.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/base2new_test.sh oxford_pets 1
# Expects the output of scripts/promptsrc/base2new_train.sh for the same DATASET and SEED.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=PromptSRC

DATASET=$1
SEED=$2

CFG=vit_b16_c2_ep20_batch4_4+4ctx
SHOTS=16
LOADEP=20
SUB=new

COMMON_DIR=${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
MODEL_DIR=output/base2new/train_base/${COMMON_DIR}
DIR=output/base2new/test_${SUB}/${COMMON_DIR}
if [ -d "$DIR" ]; then
    echo "Results are available in ${DIR}. Evaluating again..."
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
--model-dir ${MODEL_DIR} \
--load-epoch ${LOADEP} \
--eval-only \
DATASET.NUM_SHOTS ${SHOTS} \
DATASET.SUBSAMPLE_CLASSES ${SUB} \
"${@:3}"
