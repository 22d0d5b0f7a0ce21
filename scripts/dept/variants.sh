#!/bin/bash
# The DePT variants of scripts/dept/*.sh (sourced after scripts/lib/launch.sh).
#   coop, cocoop, kgcoop, maple  the release's trainers ExtrasLinearProbe{CoOp,CoCoOp,KgCoOp,MaPLe}
#                                with its YAMLs (configs/trainers/ExtrasLinearProbe*/); cross-dataset
#                                uses the same YAMLs (the release ships no xd config)
#   promptsrc                    PromptSRC's YAML (base-to-new / cross-dataset) + TRAINER.DEPT.ENABLED True
#   dpl                          TrainerSubnet (DPL's base2new / fewshot YAML) + TRAINER.DEPT.ENABLED True,
#                                the subnet from a search: PROMPT_CONFIG (a searched_config.json), or
#                                the search of scripts/dpl/base2new.sh (base-to-new) or
#                                scripts/dpl/transfer.sh (cross-dataset), run first when missing
# For DePT switched on by option, the config folder is <cfg>_dept, so tables tell the runs apart.
#   CFG          the method's config instead of the default (a stem in its folder or a YAML path)
#   SEARCH_CFG   dpl: the search's config (configs/trainers/TrainerSupernet/, default fewshot)

# dept_variant METHOD PROTOCOL (b2n or xd): sets TRAINER, CFG, METHOD_OPTS, CONFIG_SUFFIX
dept_variant() {
    local default
    METHOD=$(echo "$1" | tr '[:upper:]' '[:lower:]')
    METHOD_OPTS=(); CONFIG_SUFFIX=""
    case "$METHOD" in
        coop) TRAINER=ExtrasLinearProbeCoOp; default=vit_b16_ep10_bs4_lr35 ;;
        cocoop) TRAINER=ExtrasLinearProbeCoCoOp; default=vit_b16_c4_ep10_batch1_ctxv1 ;;
        kgcoop) TRAINER=ExtrasLinearProbeKgCoOp; default=vit_b16_ep10_ctxv1_bs4_lr35 ;;
        maple) TRAINER=ExtrasLinearProbeMaPLe; default=vit_b16_c2_ep10_batch4_2ctx ;;
        promptsrc)
            TRAINER=PromptSRC; default=vit_b16_c2_ep20_batch4_4+4ctx
            if [ "$2" = xd ]; then default=vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets; fi ;;
        dpl)
            TRAINER=TrainerSubnet; default=base2new
            if [ "$2" = xd ]; then default=fewshot; fi ;;
        *) die "unknown DePT variant '$1': give coop, cocoop, kgcoop, maple, promptsrc or dpl" ;;
    esac
    case "$METHOD" in
        promptsrc|dpl) METHOD_OPTS=(TRAINER.DEPT.ENABLED True); CONFIG_SUFFIX=_dept ;;
    esac
    CFG=${CFG:-$default}
}

# dpl_subnet PROTOCOL DATASET SEED RUN: adds the subnet's PROMPT_CONFIG to METHOD_OPTS; with RUN=run
# the search stage is run (train.py skips a finished search)
dpl_subnet() {
    local protocol=$1 dataset=$2 seed=$3 run=$4 config
    if [ -n "${PROMPT_CONFIG:-}" ]; then
        METHOD_OPTS+=(TRAINER.TRAINERSUBNET.PROMPT_CONFIG "$(abspath "$PROMPT_CONFIG")"); return
    fi
    local keep_trainer=$TRAINER keep_cfg=$CFG keep_opts=("${METHOD_OPTS[@]}") keep_suffix=$CONFIG_SUFFIX
    TRAINER=TrainerSupernet CFG=${SEARCH_CFG:-fewshot} METHOD_OPTS=() CONFIG_SUFFIX=""
    use_dataset "$dataset"; use_config
    local dir subsample=()
    if [ "$protocol" = b2n ]; then
        dir=$OUTPUT/base2new/search/$DATASET_TAG/shots_$SHOTS/$TRAINER/$CONFIG_TAG/seed$seed
        subsample=(DATASET.SUBSAMPLE_CLASSES base)
    else
        dir=$OUTPUT/search/$DATASET_TAG/shots_$SHOTS/$TRAINER/$CONFIG_TAG/seed$seed
    fi
    if [ "$run" = run ]; then train_py "$dir" "$seed" -- DATASET.NUM_SHOTS "$SHOTS" "${subsample[@]}"; fi
    TRAINER=$keep_trainer CFG=$keep_cfg METHOD_OPTS=("${keep_opts[@]}") CONFIG_SUFFIX=$keep_suffix
    METHOD_OPTS+=(TRAINER.TRAINERSUBNET.PROMPT_CONFIG "$dir/searched_config.json")
}
