"""Zero-shot CLIP baselines (evaluation only: run with --eval-only).

* ``ZeroshotCLIP``: one hand-written template per dataset (CoOp's table,
  ``datasets.templates.ZEROSHOT_TEMPLATES``; datasets not in it get
  "a photo of a {}.").
* ``ZeroshotCLIP2``: the average text feature over CLIP's 7 selected ImageNet
  templates, plus the dataset's own template for datasets other than ImageNet.

Config: ``TRAINER.ZSCLIP.PREC``. Nothing is registered or trained, so
``load_model`` is a no-op and no checkpoint is read or written.
"""
import torch

from dassl.engine import TRAINER_REGISTRY, TrainerX

from datasets.templates import IMAGENET_TEMPLATES_SELECT, ZEROSHOT_TEMPLATES, template_for
from trainers.common import (
    autocast,
    check_precision,
    clean_classname,
    prepare_clip,
    tokenize,
)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(TrainerX):
    """CLIP with a fixed text classifier built from prompt templates."""

    def check_cfg(self, cfg):
        check_precision(cfg.TRAINER.ZSCLIP.PREC)

    def templates(self):
        return [template_for(self.cfg, ZEROSHOT_TEMPLATES)]

    def build_model(self):
        cfg = self.cfg
        classnames = [clean_classname(c) for c in self.dm.dataset.classnames]
        clip_model, self.prec = prepare_clip(cfg, cfg.TRAINER.ZSCLIP.PREC, self.device)
        clip_model.to(self.device)

        templates = self.templates()
        print(f"Prompt templates ({len(templates)}): {templates}")
        with torch.no_grad(), autocast(self.prec, self.device):
            per_template = []
            for template in templates:
                prompts = tokenize([template.format(c) for c in classnames], clip_model)
                features = clip_model.encode_text(prompts.to(self.device)).float()
                per_template.append(features / features.norm(dim=-1, keepdim=True))
            # Ensemble in the normalised space, then renormalise (CLIP's recipe).
            text_features = torch.stack(per_template).mean(dim=0)  # (n_cls, embed)
            text_features = text_features / text_features.norm(dim=-1, keepdim=True)

        self.text_features = text_features
        self.clip_model = clip_model

    def forward_backward(self, batch):
        raise RuntimeError(
            f"{type(self).__name__} has nothing to train; run train.py with --eval-only."
        )

    def model_inference(self, image):
        with autocast(self.prec, self.device):
            image_features = self.clip_model.encode_image(image.type(self.clip_model.dtype))
        image_features = image_features.float()
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        logit_scale = self.clip_model.logit_scale.exp().float()
        return logit_scale * image_features @ self.text_features.t()  # (batch, n_cls)


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
