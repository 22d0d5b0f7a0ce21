#!/bin/bash
# Evaluate CoOp prompts learned on ImageNet (16 shots, 16 context tokens, unified
# context, class token at the end; seeds 1-3, epoch 50) on another dataset:
# domain generalisation (imagenetv2, imagenet_sketch, imagenet_a, imagenet_r) or transfer.
# usage: bash scripts/coop/eval.sh DATASET CFG
#   e.g. bash scripts/coop/eval.sh imagenet_sketch rn50_ep50
# Expects the ImageNet runs of scripts/coop/main.sh under output/imagenet/CoOp/.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=CoOp
SHOTS=16
NCTX=16
CSC=False
CTP=end

DATASET=$1
CFG=$2

for SEED in 1 2 3
do
    python train.py \
    --root ${DATA} \
    --seed ${SEED} \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir output/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc${CSC}_ctp${CTP}/${DATASET}/seed${SEED} \
    --model-dir output/imagenet/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc${CSC}_ctp${CTP}/seed${SEED} \
    --load-epoch 50 \
    --eval-only \
    TRAINER.COOP.N_CTX ${NCTX} \
    TRAINER.COOP.CSC ${CSC} \
    TRAINER.COOP.CLASS_TOKEN_POSITION ${CTP}
done
