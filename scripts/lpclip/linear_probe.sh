#!/bin/bash
# Linear-probe CLIP, CoOp's few-shot protocol: 1, 2, 4, 8, 16 shots x seeds 1-3 on one dataset.
# usage: bash scripts/lpclip/linear_probe.sh DATASET [KEY VALUE ...]
#   e.g. bash scripts/lpclip/linear_probe.sh oxford_pets LINEAR_PROBE.PREC bf16
#   DATASET    a file configs/datasets/DATASET.yaml
#   KEY VALUE  extra config overrides (LINEAR_PROBE.*, MODEL.BACKBONE.*, DATALOADER.*, ...)
# Environment: DATA (dataset root, default ./data), OUTPUT (default output), CFG
# (configs/trainers/LinearProbe/CFG.yaml, default vit_b16), CLIP_WEIGHTS (a local CLIP file),
# SHOTS (default "1 2 4 8 16"), SEEDS (default "1 2 3"), PYTHON.
# Output: <OUTPUT>/fewshot/<DATASET>/shots_<K>/LinearProbe/<CFG>/seed<S> (log.txt, linear_probe.json),
# next to the prompt learners': python -m tools.parse_results <OUTPUT> tables them together.
# Image features are cached under <DATA>/clip_features (LINEAR_PROBE.CACHE_DIR): the test split is
# encoded once for all shots and seeds. A finished run is skipped.
set -e
cd "$(dirname "$0")/../.."
if [ $# -lt 1 ]; then awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 2; fi

DATA=${DATA:-./data}
OUTPUT=${OUTPUT:-output}
PYTHON=${PYTHON:-python}
CFG=${CFG:-vit_b16}
SHOTS=${SHOTS:-1 2 4 8 16}
SEEDS=${SEEDS:-1 2 3}

DATASET=$1
shift
BACKBONE=()
if [ -n "${CLIP_WEIGHTS:-}" ]; then BACKBONE=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi

for K in $SHOTS
do
    for SEED in $SEEDS
    do
        DIR=${OUTPUT}/fewshot/${DATASET}/shots_${K}/LinearProbe/${CFG}/seed${SEED}
        if grep -qs "^Elapsed:" "$DIR"/log.txt*; then
            echo "Results are available in ${DIR}. Skip this job"
            continue
        fi
        echo "Run this job and save the output to ${DIR}"
        $PYTHON -m tools.linear_probe \
        --root "$DATA" \
        --seed "$SEED" \
        --dataset-config-file configs/datasets/${DATASET}.yaml \
        --config-file configs/trainers/LinearProbe/${CFG}.yaml \
        --output-dir "$DIR" \
        DATASET.NUM_SHOTS "$K" \
        "${BACKBONE[@]}" "$@"
    done
done
