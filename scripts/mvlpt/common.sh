#!/bin/bash
# Shared by the MVLPT launchers (sourced). Environment: DATA (dataset root, default ./data),
# OUTPUT (default output), CLIP_WEIGHTS (a local CLIP file), PYTHON, CFG (configs/trainers/MVLPT/CFG.yaml,
# default vit_b16_mupt), SEEDS (default "1 2 3").
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
DATA=${DATA:-./data}
OUTPUT=${OUTPUT:-output}
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
CFG=${CFG:-vit_b16_mupt}
SEEDS=${SEEDS:-1 2 3}
# The release's 11 CoOp source datasets (2,191 classes), in its order (the logit columns' order).
MVLPT_SOURCES="ImageNet,Caltech101,Food101,StanfordCars,OxfordPets,OxfordFlowers,FGVCAircraft,SUN397,DescribableTextures,EuroSAT,UCF101"
BACKBONE=()
if [ -n "${CLIP_WEIGHTS:-}" ]; then BACKBONE=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi
is_finished() { grep -qs "^Elapsed:" "$1"/log.txt*; }
# dataset_yaml NAME: the YAML whose DATASET.NAME is NAME (the first of "A,B")
dataset_yaml() {
    local first=${1%%,*} match
    match=$(grep -il "^ *NAME: *\"\?${first}\"\? *$" configs/datasets/*.yaml | head -n 1)
    if [ -z "$match" ]; then echo "Unknown dataset '${first}' (no YAML in configs/datasets with NAME ${first})" >&2; return 1; fi
    echo "$match"
}
