#!/bin/bash
# DPL search stage (TrainerSupernet), as in the official release.
# usage: bash scripts/trainersupernet/launch_nas.sh DATASET OUTPUT_DIR SEED SHOTS [KEY VALUE ...]
#   e.g. bash scripts/trainersupernet/launch_nas.sh Caltech101 output/search/caltech101 1 16
#   DATASET  a configs/datasets/<name>.yaml stem or a registered name; "A,B" searches several at once
# Datasets from $DATA (default ./data); CLIP weights from $CLIP_WEIGHTS when set (MODEL.BACKBONE.PATH).
# A finished run is never overwritten; an unfinished one resumes from its last epoch.
set -e
source "$(dirname "$0")/../dpl/common.sh"
if [ $# -lt 4 ]; then
    sed -n '3,8p' "$0"; exit 2
fi
DATASET=$1; DIR=$2; SEED=$3; SHOTS=$4; shift 4

if is_finished "$DIR"; then
    echo "Search in ${DIR} is finished; not overwriting it (delete the folder to search again)."
    exit 0
fi
YAML=$(dataset_yaml "$DATASET")
$PYTHON train.py \
    --root "$DATA" \
    --seed "$SEED" \
    --trainer TrainerSupernet \
    --dataset-config-file "$YAML" \
    --config-file configs/trainers/TrainerSupernet/${SEARCH_CFG}.yaml \
    --output-dir "$DIR" \
    DATASET.NUM_SHOTS "$SHOTS" \
    $(dataset_opts "$DATASET") $(backbone_opts) "$@"
