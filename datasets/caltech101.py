"""Caltech101: ``caltech-101/101_ObjectCategories/<class>/*.jpg`` + ``split_zhou_Caltech101.json``."""

from dassl.data.datasets import DATASET_REGISTRY

from .common import CoOpDataset, read_and_split_data

# Not object classes: a clutter class and a near-duplicate of "Faces"
IGNORED = ["BACKGROUND_Google", "Faces_easy"]
# Folder names that read badly in a prompt
NEW_CNAMES = {
    "airplanes": "airplane",
    "Faces": "face",
    "Leopards": "leopard",
    "Motorbikes": "motorbike",
}


@DATASET_REGISTRY.register()
class Caltech101(CoOpDataset):
    dataset_dir = "caltech-101"
    image_subdir = "101_ObjectCategories"
    split_name = "split_zhou_Caltech101.json"

    def make_split(self):
        return read_and_split_data(self.image_dir, ignored=IGNORED, new_cnames=NEW_CNAMES)
