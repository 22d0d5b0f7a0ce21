"""Per-dataset prompt templates."""

import pytest

from dataset_trees import make_cfg


def test_tables_are_loaded_from_the_json():
    from datasets.templates import CUSTOM_TEMPLATES, IMAGENET_TEMPLATES, IMAGENET_TEMPLATES_SELECT

    assert len(IMAGENET_TEMPLATES) == 60 and IMAGENET_TEMPLATES[0] == "a photo of a {}."
    assert len(IMAGENET_TEMPLATES_SELECT) == 7
    names = {"ImageNet", "Caltech101", "OxfordPets", "StanfordCars", "OxfordFlowers", "Food101", "FGVCAircraft",
             "SUN397", "DescribableTextures", "EuroSAT", "UCF101", "ImageNetV2", "ImageNetSketch", "ImageNetA",
             "ImageNetR"}
    assert set(CUSTOM_TEMPLATES) == names
    assert all(t.count("{}") == 1 for t in CUSTOM_TEMPLATES.values())


@pytest.mark.parametrize(
    "name,expected",
    [
        ("OxfordPets", "a type of pet, a photo of a {}."),
        ("EuroSAT", "a centered satellite photo of {}."),
        ("Toy", "a photo of a {}."),
        ("MyOwnReader", "a photo of a {}."),
    ],
)
def test_template_for(tmp_path, name, expected):
    from datasets.templates import template_for

    assert template_for(make_cfg(tmp_path, name)) == expected


def test_template_for_other_table_and_image_folder(tmp_path):
    from datasets.templates import ZEROSHOT_TEMPLATES, template_for

    assert template_for(make_cfg(tmp_path, "OxfordPets"), ZEROSHOT_TEMPLATES) == "a photo of a {}, a type of pet."
    cfg = make_cfg(tmp_path, "ImageFolder")
    cfg.DATASET.IMAGE_FOLDER.TEMPLATE = "an X-ray of {}."
    assert template_for(cfg) == "an X-ray of {}."
    cfg.DATASET.IMAGE_FOLDER.TEMPLATE = "an X-ray"
    with pytest.raises(ValueError, match="exactly one"):
        template_for(cfg)
