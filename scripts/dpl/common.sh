#!/bin/bash
# Helpers shared by the DPL launchers (sourced, not run).
#   DATA          dataset root (default ./data)
#   CLIP_WEIGHTS  a local CLIP file (MODEL.BACKBONE.PATH); empty = official download by name
#   SEARCH_CFG    configs/trainers/TrainerSupernet/<SEARCH_CFG>.yaml (default fewshot)
#   TRAIN_CFG     configs/trainers/TrainerSubnet/<TRAIN_CFG>.yaml (default fewshot)
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
DATA=${DATA:-./data}
SEARCH_CFG=${SEARCH_CFG:-fewshot}
TRAIN_CFG=${TRAIN_CFG:-fewshot}
PYTHON=${PYTHON:-$(command -v python || command -v python3)}

# dataset_yaml NAME: configs/datasets/NAME.yaml, or the YAML whose DATASET.NAME is NAME
# (case-insensitive), so both "caltech101" (CoOp's scripts) and "Caltech101" (DPL's) work.
# For several datasets ("A,B") the first one's YAML is used and DATASET.NAME is overridden.
dataset_yaml() {
    local first=${1%%,*}
    if [ -f "configs/datasets/${first}.yaml" ]; then
        echo "configs/datasets/${first}.yaml"; return 0
    fi
    local match
    match=$(grep -il "^ *NAME: *\"\?${first}\"\? *$" configs/datasets/*.yaml | head -n 1)
    if [ -z "$match" ]; then
        echo "Unknown dataset '${first}': no configs/datasets/${first}.yaml and no dataset YAML with NAME ${first}." >&2
        echo "Known: $(ls configs/datasets | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
        return 1
    fi
    echo "$match"
}

# dataset_opts NAME: the DATASET.NAME override a comma-separated list needs
dataset_opts() {
    case "$1" in
        *,*) echo "DATASET.NAME $1" ;;
        *) echo "" ;;
    esac
}

backbone_opts() {
    if [ -n "${CLIP_WEIGHTS:-}" ]; then echo "MODEL.BACKBONE.PATH ${CLIP_WEIGHTS}"; fi
}

# is_finished DIR: the run in DIR printed its final "Elapsed:" line
is_finished() {
    grep -qs "^Elapsed:" "$1"/log.txt*
}
