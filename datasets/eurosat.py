"""EuroSAT (RGB): ``eurosat/2750/<class>/*.jpg`` + ``split_zhou_EuroSAT.json``."""

from dassl.data.datasets import DATASET_REGISTRY

from .common import CoOpDataset, read_and_split_data

# CamelCase folder names turned into phrases a text encoder understands
NEW_CNAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


@DATASET_REGISTRY.register()
class EuroSAT(CoOpDataset):
    dataset_dir = "eurosat"
    image_subdir = "2750"
    split_name = "split_zhou_EuroSAT.json"

    def make_split(self):
        return read_and_split_data(self.image_dir, new_cnames=NEW_CNAMES)
