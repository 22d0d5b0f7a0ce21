#!/bin/bash
# PromptSRC few-shot: all classes, SHOTS images per class, 50 epochs, each of SEEDS (default "1 2 3").
# usage: bash scripts/promptsrc/few_shot.sh DATASET SHOTS [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/few_shot.sh imagenet 4
#   StanfordCars, Flowers102, FGVCAircraft, DTD and EuroSAT use the release's other GPA window:
#   bash scripts/promptsrc/few_shot.sh dtd 4 TRAINER.PROMPTSRC.GPA_MEAN 45 TRAINER.PROMPTSRC.GPA_STD 5
#   CFG  configs/trainers/PromptSRC/<CFG>.yaml or a YAML path (default vit_b16_c2_ep50_batch4_4+4ctx_few_shot)
# Output: <OUTPUT>/<DATASET>/PromptSRC/<CFG>_<SHOTS>shots/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=PromptSRC CFG=${CFG:-vit_b16_c2_ep50_batch4_4+4ctx_few_shot}
few_shot "$@"
