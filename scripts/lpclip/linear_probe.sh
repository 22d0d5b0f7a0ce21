#!/bin/bash
# Linear-probe CLIP, CoOp's few-shot protocol: 1, 2, 4, 8, 16 shots x seeds 1-3 on one dataset.
# usage: bash scripts/lpclip/linear_probe.sh DATASET [KEY VALUE ...]
#   e.g. bash scripts/lpclip/linear_probe.sh oxford_pets LINEAR_PROBE.PREC bf16
#   DATASET    a stem of configs/datasets/, a registered name (any case), a dataset YAML, or "A,B"
#   KEY VALUE  config overrides (LINEAR_PROBE.*, MODEL.BACKBONE.*, DATALOADER.*, ...), checked by
#              tools/linear_probe.py itself
#   CFG        (environment) configs/trainers/LinearProbe/<CFG>.yaml or a YAML path (default vit_b16)
#   SHOTS      (environment) default "1 2 4 8 16"; SEEDS default "1 2 3"
# Output: <OUTPUT>/fewshot/<DATASET>/shots_<K>/LinearProbe/<CFG>/seed<S> (log.txt, linear_probe.json),
# next to the prompt learners': python -m tools.parse_results <OUTPUT> tables them together.
# Image features are cached under <DATA>/clip_features (LINEAR_PROBE.CACHE_DIR): the test split is
# encoded once for all shots and seeds. The probe keeps train.py's run records: a finished run with
# the same settings is skipped, one with other settings refused (OVERWRITE=1 runs it again).
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
usage_unless 1 "$@"
use_dataset "$1"; shift
CFG=${CFG:-vit_b16}
TRAINER=LinearProbe use_config
FLAGS=()
if [ "${OVERWRITE:-0}" = "1" ]; then FLAGS+=(--overwrite); fi
BACKBONE=()
if [ -n "${CLIP_WEIGHTS:-}" ]; then BACKBONE=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi

for K in ${SHOTS:-1 2 4 8 16}; do
    for SEED in ${SEEDS:-1 2 3}; do
        COMMAND=("$PYTHON" -m tools.linear_probe --root "$DATA" --seed "$SEED"
            --dataset-config-file "$DATASET_YAML" --config-file "$CONFIG_YAML" "${FLAGS[@]}"
            --output-dir "$OUTPUT/fewshot/$DATASET_TAG/shots_$K/LinearProbe/$CONFIG_TAG/seed$SEED"
            DATASET.NUM_SHOTS "$K" "${DATASET_OPTS[@]}" "${BACKBONE[@]}" "$@")
        echo "+ ${COMMAND[*]}"
        "${COMMAND[@]}"
    done
done
