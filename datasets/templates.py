"""Prompt templates per dataset, read from ``datasets/prompt_templates.json`` (data, see docs/DATASETS.md).

* ``CUSTOM_TEMPLATES``: one template per dataset NAME (the official DPL subnet's table);
* ``ZEROSHOT_TEMPLATES``: one per dataset NAME (CoOp's ZeroshotCLIP table; wording differs);
* ``IMAGENET_TEMPLATES``: CLIP's 60 ImageNet templates (order matters, see the JSON's ``_source``);
* ``IMAGENET_TEMPLATES_SELECT``: the 7 used by CoOp's ZeroshotCLIP2.
"""

import json
import os

from dassl.errors import ConfigError

DEFAULT_TEMPLATE = "a photo of a {}."

_TEMPLATES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prompt_templates.json")

with open(_TEMPLATES_FILE, "r", encoding="utf-8") as _f:
    _TABLES = json.load(_f)

CUSTOM_TEMPLATES = _TABLES["CUSTOM_TEMPLATES"]
ZEROSHOT_TEMPLATES = _TABLES["ZEROSHOT_TEMPLATES"]
IMAGENET_TEMPLATES = _TABLES["IMAGENET_TEMPLATES"]
IMAGENET_TEMPLATES_SELECT = _TABLES["IMAGENET_TEMPLATES_SELECT"]


def template_for(cfg, table=None):
    """The single prompt template (with one ``{}`` for the class name) of ``cfg.DATASET.NAME``.

    ``table`` is the per-dataset table to use (default ``CUSTOM_TEMPLATES``). A dataset defined by
    a YAML (``ImageFolder``) brings its own in ``DATASET.IMAGE_FOLDER.TEMPLATE``; any dataset not in
    the table (``Toy``, a user's own reader) gets ``"a photo of a {}."``.
    """
    table = CUSTOM_TEMPLATES if table is None else table
    name = cfg.DATASET.NAME
    if name == "ImageFolder":
        template = cfg.DATASET.IMAGE_FOLDER.TEMPLATE
        if template.count("{}") != 1:
            raise ConfigError(
                f'DATASET.IMAGE_FOLDER.TEMPLATE must contain exactly one "{{}}" for the class name, '
                f'got "{template}"'
            )
        return template
    return table.get(name, DEFAULT_TEMPLATE)
