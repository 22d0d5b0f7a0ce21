#!/bin/bash
# CoOp few-shot training on all classes, seeds 1-3 (CoOp's protocol).
# usage: bash scripts/coop/main.sh DATASET CFG CTP NCTX SHOTS CSC
#   e.g. bash scripts/coop/main.sh oxford_pets rn50_ep50 end 16 1 False
#   DATASET  a file configs/datasets/DATASET.yaml
#   CFG      a file configs/trainers/CoOp/CFG.yaml
#   CTP      class token position: end, middle or front
#   NCTX     number of context tokens
#   SHOTS    training images per class (1, 2, 4, 8, 16)
#   CSC      class-specific context: True or False
# Datasets are read from $DATA (default ./data). Existing output folders are skipped.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=CoOp

DATASET=$1
CFG=$2
CTP=$3
NCTX=$4
SHOTS=$5
CSC=$6

for SEED in 1 2 3
do
    DIR=output/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc${CSC}_ctp${CTP}/seed${SEED}
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
        TRAINER.COOP.N_CTX ${NCTX} \
        TRAINER.COOP.CSC ${CSC} \
        TRAINER.COOP.CLASS_TOKEN_POSITION ${CTP} \
        DATASET.NUM_SHOTS ${SHOTS}
    fi
done
