"""CoCoOp: Conditional Context Optimization (Zhou et al., CVPR 2022).

CoOp's shared context plus a per-image shift: a small meta-net maps the image
feature to one bias vector that is added to every context token, so each image
gets its own prompts. The text encoder therefore runs once per image (CoCoOp's
configs use batch size 1 for that reason).

Config (``TRAINER.COCOOP``): N_CTX, CTX_INIT, PREC.
"""
from collections import OrderedDict

import torch
import torch.nn as nn

from dassl.engine import TRAINER_REGISTRY

from trainers.base import PromptTrainer
from trainers.common import initial_context, register_class_prompts
from trainers.model import PromptedCLIP, PromptProvider

OPTIONS = {
    "TRAINER.COCOOP": {
        "N_CTX": (16, "number of learned context vectors (ignored with CTX_INIT: its token count)"),
        "CTX_INIT": ("", 'initialise the context from these words, e.g. "a photo of a"'),
        "PREC": ("fp16", "precision: fp16, fp32, amp or bf16 (trainers/common.py)"),
    },
}


class PromptLearner(PromptProvider):
    """Shared context vectors shifted by a meta-net of the image feature."""

    image_conditioned = True

    def __init__(self, cfg, classnames, clip_model):
        super().__init__()
        opts = cfg.TRAINER.COCOOP
        ctx_dim = clip_model.ln_final.weight.shape[0]
        vis_dim = clip_model.visual.output_dim
        ctx_vectors, prompt_prefix, n_ctx = initial_context(opts.CTX_INIT, opts.N_CTX, clip_model)
        self.ctx = nn.Parameter(ctx_vectors)  # (n_ctx, ctx_dim)

        # The paper's bottleneck is vis_dim // 16 (32 for ViT-B/16's 512).
        hidden = max(1, vis_dim // 16)
        self.meta_net = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(vis_dim, hidden)),
            ("relu", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(hidden, ctx_dim)),
        ])).to(clip_model.dtype)
        register_class_prompts(self, prompt_prefix, n_ctx, classnames, clip_model)
        self.n_cls = len(classnames)
        self.n_ctx = n_ctx

    def text_input(self, image_features=None):
        return self(image_features), self.tokenized_prompts

    def forward(self, im_features):
        """(batch, vis_dim) image features -> (batch, n_cls, n_tokens, ctx_dim) prompts."""
        bias = self.meta_net(im_features).unsqueeze(1)  # (batch, 1, ctx_dim)
        ctx_shifted = self.ctx.unsqueeze(0) + bias  # (batch, n_ctx, ctx_dim)

        prompts = []
        for ctx_i in ctx_shifted:
            ctx_i = ctx_i.unsqueeze(0).expand(self.n_cls, -1, -1)  # (n_cls, n_ctx, dim)
            prompts.append(torch.cat([self.token_prefix, ctx_i, self.token_suffix], dim=1))
        return torch.stack(prompts)


class CustomCLIP(PromptedCLIP):
    def __init__(self, cfg, classnames, clip_model):
        super().__init__(clip_model, PromptLearner(cfg, classnames, clip_model))


@TRAINER_REGISTRY.register()
class CoCoOp(PromptTrainer):
    """Conditional Context Optimization, https://arxiv.org/abs/2203.05557."""

    CONFIG_SECTION = "COCOOP"
    SHAPE_KEYS = ("N_CTX", "CTX_INIT")  # with CTX_INIT its token count is the context length

    def build_custom_clip(self, cfg, classnames, clip_model):
        return CustomCLIP(cfg, classnames, clip_model)
