#!/bin/bash
# PromptSRC: evaluate released base-to-new weights (epoch 20) on the base and the new classes.
# usage: bash scripts/promptsrc/reproduce_base2novel_setting.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/reproduce_base2novel_setting.sh imagenet 1 /path/to/imagenet
#   WEIGHTSPATH is the unzipped folder of the release: base/seed<SEED>/VLPromptLearner/model.pth.tar-20
#   (the whole model; its prompts are taken, docs/baselines.md).
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=PromptSRC

DATASET=$1
SEED=$2
WEIGHTSPATH=$3

CFG=vit_b16_c2_ep20_batch4_4+4ctx
SHOTS=16
LOADEP=20

COMMON_DIR=${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
MODEL_DIR=${WEIGHTSPATH}/base/seed${SEED}
for SUB in base new
do
    DIR=output/base2new/test_${SUB}/${COMMON_DIR}
    echo "Evaluating ${MODEL_DIR} on the ${SUB} classes, output in ${DIR}"
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
    "${@:4}"
done
