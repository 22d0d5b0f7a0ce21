"""UCF101 (middle frames): ``ucf101/UCF-101-midframes/<Action_Name>/*.jpg``, ``ucfTrainTestlist/``
+ ``split_zhou_UCF101.json``."""

import os
import re

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .common import CoOpDataset, require, split_trainval


@DATASET_REGISTRY.register()
class UCF101(CoOpDataset):
    dataset_dir = "ucf101"
    image_subdir = "UCF-101-midframes"
    split_name = "split_zhou_UCF101.json"

    def make_split(self):
        list_dir = os.path.join(self.dataset_dir, "ucfTrainTestlist")
        class_file = require(os.path.join(list_dir, "classInd.txt"), "classInd.txt", "UCF101")
        action2label = {}
        with open(class_file, "r") as f:
            for line in f:
                if line.strip():
                    class_id, action = line.split()
                    action2label[action] = int(class_id) - 1
        trainval = self.read_list(action2label, os.path.join(list_dir, "trainlist01.txt"))
        test = self.read_list(action2label, os.path.join(list_dir, "testlist01.txt"))
        train, val = split_trainval(trainval)
        return train, val, test

    def read_list(self, action2label, filepath):
        """Lines ``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi [label]`` -> middle-frame jpg items."""
        items = []
        with open(require(filepath, "a train/test list", "UCF101"), "r") as f:
            for line in f:
                if not line.strip():
                    continue
                action, video = line.split()[0].split("/")
                # "ApplyEyeMakeup" -> "Apply_Eye_Makeup": the frame folders and class names split words
                action_words = "_".join(re.findall("[A-Z][^A-Z]*", action))
                impath = os.path.join(self.image_dir, action_words, video.replace(".avi", ".jpg"))
                items.append(Datum(impath=impath, label=action2label[action], classname=action_words))
        return items
