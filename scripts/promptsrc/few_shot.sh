#!/bin/bash
# PromptSRC few-shot: all classes, SHOTS images per class, 50 epochs, seeds 1-3.
# usage: bash scripts/promptsrc/few_shot.sh DATASET SHOTS [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/few_shot.sh imagenet 4
#   StanfordCars, Flowers102, FGVCAircraft, DTD and EuroSAT use the release's other GPA window:
#   bash scripts/promptsrc/few_shot.sh dtd 4 TRAINER.PROMPTSRC.GPA_MEAN 45 TRAINER.PROMPTSRC.GPA_STD 5
# Datasets are read from $DATA (default ./data). Existing output folders are skipped.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=PromptSRC

DATASET=$1
SHOTS=$2

CFG=vit_b16_c2_ep50_batch4_4+4ctx_few_shot

for SEED in 1 2 3
do
    DIR=output/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
    if [ -d "$DIR" ]; then
        echo "Results are available in ${DIR}. Skip this job"
    else
        echo "Run this job and save the output to ${DIR}"
        python train.py \
        --root ${DATA} \
        --seed ${SEED} \
        --trainer ${TRAINER} \
        --dataset-config-file configs/datasets/${DATASET}.yaml \
        --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
        --output-dir ${DIR} \
        DATASET.NUM_SHOTS ${SHOTS} \
        "${@:3}"
    fi
done
