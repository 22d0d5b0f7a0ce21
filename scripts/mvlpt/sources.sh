#!/bin/bash
# Sourced by the MVLPT launchers: the release's 11 CoOp source datasets (2,191 classes), in its
# order (the order of the logit columns).
MVLPT_SOURCES="ImageNet,Caltech101,Food101,StanfordCars,OxfordPets,OxfordFlowers,FGVCAircraft,SUN397,DescribableTextures,EuroSAT,UCF101"
