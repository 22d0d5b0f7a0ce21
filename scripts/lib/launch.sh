#!/bin/bash
# The launchers' shared library (sourced, not run): environment, names, checked overrides, the
# train.py call, and the CoOp-family protocol layouts. A launcher sets TRAINER and CFG, sources
# this file and calls one function; read any launcher under scripts/ for the pattern.
#
# Environment, for every launcher:
#   DATA          dataset root (default: ./data in the repository)
#   OUTPUT        root of the output folders (default: ./output in the repository)
#   CLIP_WEIGHTS  a local CLIP file, passed as MODEL.BACKBONE.PATH (no download); unset: the
#                 official weights of the config's MODEL.BACKBONE.NAME
#   PYTHON        the interpreter (default: python, else python3)
#   OVERWRITE=1   every train.py call gets --overwrite: the runs start fresh (train.py keeps the
#                 old ones aside; see its --help)
#   CFG           the method's config: a stem of configs/trainers/<TRAINER>/ or a path to a YAML
#                 (each launcher names its default in its usage)
#   SEEDS, SHOTS  where a launcher loops over seeds or fixes the shots, it says so in its usage
#   LOADEP        evaluation stages: the epoch to load (default: the latest checkpoint)
# Relative paths (DATA, OUTPUT, CLIP_WEIGHTS, YAML paths) are read from the folder the launcher
# was started in.
#
# A DATASET argument is a stem of configs/datasets/ (caltech101), a registered name in any case
# (Caltech101), a path to a dataset YAML (an ImageFolder YAML of your own), or several of those
# joined by commas ("caltech101,oxford_pets" trains on both label spaces at once); folders are
# named after the YAML stems ("caltech101+oxford_pets").
# Trailing KEY VALUE pairs go to every train.py call of the launcher, after the protocol's own
# options (so they win). Their keys are checked before anything runs.
# Whether a run is finished is train.py's business (its run records): it skips a finished run
# with the same settings, refuses one with other settings (exit 2; set OUTPUT or OVERWRITE=1),
# and resumes an unfinished one. Launchers call it for every stage.

CALLER_DIR=$PWD
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
REPO_DIR=$PWD

die() { echo "error: $*" >&2; exit 2; }

# abspath P: P read from the folder the launcher was started in
abspath() {
    case "$1" in
        /*) echo "$1" ;;
        *) echo "$CALLER_DIR/$1" ;;
    esac
}

if [ -n "${DATA:-}" ]; then DATA=$(abspath "$DATA"); else DATA=$REPO_DIR/data; fi
if [ -n "${OUTPUT:-}" ]; then OUTPUT=$(abspath "$OUTPUT"); else OUTPUT=$REPO_DIR/output; fi
if [ -n "${CLIP_WEIGHTS:-}" ]; then CLIP_WEIGHTS=$(abspath "$CLIP_WEIGHTS"); fi
PYTHON=${PYTHON:-$(command -v python || command -v python3)}

# usage_unless N "$@": print the launcher's header (its usage) and exit 2 unless it got N arguments
usage_unless() {
    local need=$1; shift
    if [ $# -lt "$need" ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
        awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" >&2
        exit 2
    fi
}

helper() { "$PYTHON" "$REPO_DIR/scripts/lib/launch.py" "$@"; }

# in_caller P: P if it names a file from the caller's folder (a YAML path), else P unchanged (a name)
in_caller() {
    case "$1" in
        */*|*.yaml|*.yml) abspath "$1" ;;
        *) echo "$1" ;;
    esac
}

# use_dataset SPEC: sets DATASET_TAG (folder name), DATASET_YAML and DATASET_OPTS (KEY VALUE ...)
use_dataset() {
    local entries=() entry answer
    IFS=',' read -r -a entries <<< "$1"
    local spec=""
    for entry in "${entries[@]}"; do spec+="${spec:+,}$(in_caller "$entry")"; done
    [ -n "$spec" ] || die "no dataset given"
    answer=$(helper dataset "$spec") || exit 2
    mapfile -t answer <<< "$answer"
    DATASET_TAG=${answer[0]}
    DATASET_YAML=${answer[1]}
    DATASET_OPTS=("${answer[@]:2}")
}

# use_config: sets CONFIG_YAML and CONFIG_TAG (folder name) from CFG, a stem in
# configs/trainers/<CONFIG_FOLDER, default TRAINER>/ or a YAML path; CONFIG_SUFFIX is added to the tag
use_config() {
    [ -n "${CFG:-}" ] || die "CFG is empty"
    CONFIG_YAML=$(helper config "${CONFIG_FOLDER:-$TRAINER}" "$(in_caller "$CFG")") || exit 2
    CONFIG_TAG=$(basename "${CONFIG_YAML%.*}")
    if [ -n "${CONFIG_SUFFIX:-}" ]; then CONFIG_TAG+=$CONFIG_SUFFIX; fi
}

# take_overrides KEY VALUE ...: checks the keys and keeps the pairs in OVERRIDES
take_overrides() {
    OVERRIDES=("$@")
    if [ $# -gt 0 ]; then helper keys "$@" || exit 2; fi
}

# train_py OUTDIR SEED [train.py option ...] [-- KEY VALUE ...]: runs train.py with the current
# dataset, TRAINER and config, then the protocol's KEY VALUE pairs, METHOD_OPTS (what a launcher
# adds to every stage of its method, e.g. TRAINER.DEPT.ENABLED True), then OVERRIDES
train_py() {
    local dir=$1 seed=$2; shift 2
    local flags=() opts=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do flags+=("$1"); shift; done
    if [ "${1:-}" = "--" ]; then shift; opts=("$@"); fi
    if [ "${OVERWRITE:-0}" = "1" ]; then flags+=(--overwrite); fi
    local backbone=()
    if [ -n "${CLIP_WEIGHTS:-}" ]; then backbone=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi
    local command=("$PYTHON" train.py --root "$DATA" --seed "$seed" --trainer "$TRAINER"
        --dataset-config-file "$DATASET_YAML" --config-file "$CONFIG_YAML" --output-dir "$dir" "${flags[@]}"
        "${DATASET_OPTS[@]}" "${backbone[@]}" "${opts[@]}" "${METHOD_OPTS[@]}" "${OVERRIDES[@]}")
    echo "+ ${command[*]}"
    "${command[@]}"
}

# require_finished DIR HINT: stop unless DIR holds a finished run (train.py's completion record)
require_finished() {
    if [ -f "$REPO_DIR/dassl/engine/run_record.py" ]; then
        "$PYTHON" -m dassl.engine.run_record finished "$1" \
            || die "no finished run in $1: $2"
    elif [ ! -d "$1" ]; then
        die "no run in $1: $2"
    fi
}

# load_epoch DIR: LOADEP, or the latest checkpoint under DIR
load_epoch() {
    if [ -n "${LOADEP:-}" ]; then echo "$LOADEP"; else helper last-epoch "$1" || exit 2; fi
}

# evaluate OUTDIR MODEL_DIR SEED [KEY VALUE ...]: an eval-only run of MODEL_DIR's checkpoint
evaluate() {
    local dir=$1 model=$2 seed=$3; shift 3
    local epoch
    epoch=$(load_epoch "$model") || exit 2
    train_py "$dir" "$seed" --model-dir "$model" --load-epoch "$epoch" --eval-only -- "$@"
}

# ---- The CoOp family's protocols (CoOp / CoCoOp / MaPLe / PromptSRC release layouts) ----------
# Each takes the launcher's positional arguments and trailing overrides; TRAINER and CFG are set.
SHOTS=${SHOTS:-16}
SEEDS=${SEEDS:-1 2 3}
SOURCE=${SOURCE:-imagenet}

# base2new_train DATASET SEED [KEY VALUE ...]: train on the base half of the classes
base2new_train() {
    usage_unless 2 "$@"
    use_dataset "$1"; use_config; local seed=$2; shift 2; take_overrides "$@"
    train_py "$OUTPUT/base2new/train_base/$DATASET_TAG/shots_$SHOTS/$TRAINER/$CONFIG_TAG/seed$seed" "$seed" \
        -- DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES base
}

# base2new_test DATASET SEED [KEY VALUE ...]: evaluate base2new_train's run on the new half
base2new_test() {
    usage_unless 2 "$@"
    use_dataset "$1"; use_config; local seed=$2; shift 2; take_overrides "$@"
    local common=$DATASET_TAG/shots_$SHOTS/$TRAINER/$CONFIG_TAG/seed$seed
    require_finished "$OUTPUT/base2new/train_base/$common" "run the base2new training stage first"
    evaluate "$OUTPUT/base2new/test_new/$common" "$OUTPUT/base2new/train_base/$common" "$seed" \
        DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES new
}

# few_shot DATASET SHOTS [KEY VALUE ...]: all classes, SHOTS images per class, for each of SEEDS
few_shot() {
    usage_unless 2 "$@"
    use_dataset "$1"; use_config; local shots=$2 seed; shift 2; take_overrides "$@"
    for seed in $SEEDS; do
        train_py "$OUTPUT/$DATASET_TAG/$TRAINER/${CONFIG_TAG}_${shots}shots/seed$seed" "$seed" \
            -- DATASET.NUM_SHOTS "$shots"
    done
}

# xd_train DATASET SEED [KEY VALUE ...]: the transfer source (ImageNet in the papers), all classes
xd_train() {
    usage_unless 2 "$@"
    use_dataset "$1"; use_config; local seed=$2; shift 2; take_overrides "$@"
    train_py "$OUTPUT/$DATASET_TAG/$TRAINER/${CONFIG_TAG}_${SHOTS}shots/seed$seed" "$seed" -- DATASET.NUM_SHOTS "$SHOTS"
}

# xd_test DATASET SEED [KEY VALUE ...]: evaluate xd_train's SOURCE run (default imagenet) on DATASET
xd_test() {
    usage_unless 2 "$@"
    use_dataset "$SOURCE"; local source=$DATASET_TAG
    use_dataset "$1"; use_config; local seed=$2; shift 2; take_overrides "$@"
    local model=$OUTPUT/$source/$TRAINER/${CONFIG_TAG}_${SHOTS}shots/seed$seed
    require_finished "$model" "run the xd training stage on $source first"
    evaluate "$OUTPUT/evaluation/$TRAINER/${CONFIG_TAG}_${SHOTS}shots/$DATASET_TAG/seed$seed" "$model" "$seed"
}
