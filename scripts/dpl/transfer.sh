#!/bin/bash
# DPL transfer protocols for one seed: search and train on ImageNet (all classes, 16 shots), then
# evaluate the trained prompts on other datasets without further training.
# usage: bash scripts/dpl/transfer.sh xd SEED   # cross-dataset: the other 10 CoOp datasets
#        bash scripts/dpl/transfer.sh dg SEED   # domain generalisation: ImageNet-V2/-Sketch/-A/-R
# Outputs: output/search|fewshot/imagenet/... (source) and output/<xd|dg>/<target>/.../seed<SEED>
set -e
source "$(dirname "$0")/common.sh"
if [ $# -ne 2 ]; then sed -n '3,7p' "$0"; exit 2; fi
PROTOCOL=$1; SEED=$2; SHOTS=16
case "$PROTOCOL" in
    xd) TARGETS="caltech101 oxford_pets stanford_cars oxford_flowers food101 fgvc_aircraft sun397 dtd eurosat ucf101" ;;
    dg) TARGETS="imagenetv2 imagenet_sketch imagenet_a imagenet_r" ;;
    *) echo "PROTOCOL must be xd or dg, got '$PROTOCOL'" >&2; exit 2 ;;
esac

bash scripts/dpl/search_then_train.sh imagenet "$SEED" "$SHOTS"
SEARCH_DIR=output/search/imagenet/shots_${SHOTS}/TrainerSupernet/${SEARCH_CFG}/seed${SEED}
MODEL_DIR=output/fewshot/imagenet/shots_${SHOTS}/TrainerSubnet/${TRAIN_CFG}/seed${SEED}
EPOCH=$(ls "$MODEL_DIR"/MultiModalPromptLearner/model.pth.tar-* | sed 's/.*-//' | sort -n | tail -n 1)
for TARGET in $TARGETS; do
    DIR=output/${PROTOCOL}/${TARGET}/shots_${SHOTS}/TrainerSubnet/${TRAIN_CFG}/seed${SEED}
    if grep -qs "^\* accuracy" "$DIR"/log.txt*; then
        echo "Results are available in ${DIR}. Skip this job"; continue
    fi
    $PYTHON train.py --root "$DATA" --seed "$SEED" --trainer TrainerSubnet \
        --dataset-config-file "configs/datasets/${TARGET}.yaml" \
        --config-file configs/trainers/TrainerSubnet/${TRAIN_CFG}.yaml \
        --output-dir "$DIR" --model-dir "$MODEL_DIR" --load-epoch "$EPOCH" --eval-only \
        TRAINER.TRAINERSUBNET.PROMPT_CONFIG "$SEARCH_DIR/searched_config.json" $(backbone_opts)
done
