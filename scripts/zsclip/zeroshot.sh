#!/bin/bash
# Zero-shot CLIP on the test split of a dataset (no training).
# usage: bash scripts/zsclip/zeroshot.sh DATASET CFG [TRAINER] [KEY VALUE ...]
#   e.g. bash scripts/zsclip/zeroshot.sh oxford_pets rn50
#   DATASET  a stem of configs/datasets/, a registered name (any case), a dataset YAML, or "A,B"
#   CFG      rn50, rn101, vit_b32 or vit_b16 (configs/trainers/CoOp/<CFG>.yaml), or a YAML path
#   TRAINER  ZeroshotCLIP (one template per dataset, default) or
#            ZeroshotCLIP2 (ensemble of 7 ImageNet templates + the dataset's own)
#   SEED     (environment) the seed of the run (default 1)
# Output: <OUTPUT>/<TRAINER>/<CFG>/<DATASET>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
usage_unless 2 "$@"
use_dataset "$1"; CFG=$2; shift 2
TRAINER=ZeroshotCLIP
if [ $# -gt 0 ] && [[ "$1" != *.* ]]; then TRAINER=$1; shift; fi
CONFIG_FOLDER=CoOp use_config  # CoOp's folder holds the backbone configs
take_overrides "$@"
train_py "$OUTPUT/$TRAINER/$CONFIG_TAG/$DATASET_TAG" "${SEED:-1}" --eval-only
