"""Zero-shot CLIP baselines (evaluation only: run with --eval-only).

* ``ZeroshotCLIP``: one hand-written template per dataset (CoOp's table,
  ``datasets.templates.ZEROSHOT_TEMPLATES``; datasets not in it get
  "a photo of a {}.").
* ``ZeroshotCLIP2``: the average text feature over CLIP's 7 selected ImageNet
  templates, plus the dataset's own template for datasets other than ImageNet.

Config: ``TRAINER.ZSCLIP.PREC``. Nothing is registered or trained, so
``load_model`` is a no-op and no checkpoint is read or written.
"""
from dassl.engine import TRAINER_REGISTRY
from dassl.utils import ConfigError

from datasets.templates import IMAGENET_TEMPLATES_SELECT, ZEROSHOT_TEMPLATES, template_for
from trainers.base import PromptTrainer
from trainers.common import autocast
from trainers.model import PromptedCLIP, PromptProvider
from trainers.zeroshot_text import zeroshot_text_features

OPTIONS = {
    "TRAINER.ZSCLIP": {
        "PREC": ("fp16", "precision: fp16, fp32, amp or bf16 (trainers/common.py)"),
    },
}


class PromptLearner(PromptProvider):
    """No prompt: fixed class features from templates (the zero-shot classifier)."""

    def __init__(self, text_features):
        super().__init__()
        self.register_buffer("text_features", text_features, persistent=False)  # (n_cls, embed)

    def class_text_features(self, model, image_features):
        return self.text_features


class CustomCLIP(PromptedCLIP):
    def __init__(self, clip_model, templates, classnames, prec, device):
        super().__init__(clip_model)
        clip_model.to(device)
        with autocast(prec, device):
            text_features = zeroshot_text_features(self, clip_model, classnames, templates, recipe="features")
        self.prompt_learner = PromptLearner(text_features)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(PromptTrainer):
    """CLIP with a fixed text classifier built from prompt templates."""

    CONFIG_SECTION = "ZSCLIP"
    TRAINS = False

    def templates(self):
        return [template_for(self.cfg, ZEROSHOT_TEMPLATES)]

    def build_custom_clip(self, cfg, classnames, clip_model):
        templates = self.templates()
        print(f"Prompt templates ({len(templates)}): {templates}")
        return CustomCLIP(clip_model, templates, classnames, self.prec, self.device)

    def forward_backward(self, batch):
        raise ConfigError(
            f"{type(self).__name__} has nothing to train; run train.py with --eval-only."
        )


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Prompt ensembling with the 7 selected ImageNet templates."""

    def templates(self):
        templates = list(IMAGENET_TEMPLATES_SELECT)
        if self.cfg.DATASET.NAME != "ImageNet":
            own = template_for(self.cfg, ZEROSHOT_TEMPLATES)
            if own not in templates:
                templates.append(own)
        return templates
