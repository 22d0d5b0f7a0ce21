#!/bin/bash
# Zero-shot CLIP on the test split of a dataset (no training).
# usage: bash scripts/zsclip/zeroshot.sh DATASET CFG [TRAINER]
#   e.g. bash scripts/zsclip/zeroshot.sh oxford_pets rn50
#   CFG      rn50, rn101, vit_b32 or vit_b16 (a file configs/trainers/CoOp/CFG.yaml)
#   TRAINER  ZeroshotCLIP (one template per dataset, default) or
#            ZeroshotCLIP2 (ensemble of 7 ImageNet templates + the dataset's own)
# Datasets are read from $DATA (default ./data).
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
DATASET=$1
CFG=$2
TRAINER=${3:-ZeroshotCLIP}

python train.py \
--root ${DATA} \
--trainer ${TRAINER} \
--dataset-config-file configs/datasets/${DATASET}.yaml \
--config-file configs/trainers/CoOp/${CFG}.yaml \
--output-dir output/${TRAINER}/${CFG}/${DATASET} \
--eval-only
