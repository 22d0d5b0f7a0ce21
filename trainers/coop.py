"""CoOp: Context Optimization (Zhou et al., IJCV 2022).

The class-name prompt "X X ... X <class>." has its X tokens replaced by learned
context vectors; CLIP stays frozen and only the context is trained.

Config (``TRAINER.COOP``): N_CTX (context length), CSC (one context per class),
CTX_INIT (initialise from words, e.g. "a photo of a"; then N_CTX is the number
of its tokens), CLASS_TOKEN_POSITION (end / middle / front), PREC.
"""
import torch
import torch.nn as nn

from dassl.engine import TRAINER_REGISTRY

from trainers.base import PromptTrainer, check_choice
from trainers.common import initial_context, num_tokens, register_class_prompts
from trainers.model import PromptedCLIP, PromptProvider

CLASS_TOKEN_POSITIONS = ("end", "middle", "front")

OPTIONS = {
    "TRAINER.COOP": {
        "N_CTX": (16, "number of learned context vectors (ignored with CTX_INIT: its token count)"),
        "CSC": (False, "class-specific context: one context per class"),
        "CTX_INIT": ("", 'initialise the context from these words, e.g. "a photo of a"'),
        "PREC": ("fp16", "precision: fp16, fp32, amp or bf16 (trainers/common.py)"),
        "CLASS_TOKEN_POSITION": ("end", "where the class name sits: end, middle or front"),
    },
}


class PromptLearner(PromptProvider):
    """Learned context vectors spliced into the token embeddings of every class prompt."""

    def __init__(self, cfg, classnames, clip_model):
        super().__init__()
        opts = cfg.TRAINER.COOP
        n_cls = len(classnames)
        ctx_vectors, prompt_prefix, n_ctx = initial_context(
            opts.CTX_INIT, opts.N_CTX, clip_model, n_cls=n_cls if opts.CSC else None
        )
        print("Class-specific contexts" if opts.CSC else "Unified context")
        # (n_ctx, ctx_dim), or (n_cls, n_ctx, ctx_dim) with CSC
        self.ctx = nn.Parameter(ctx_vectors)
        classnames = register_class_prompts(self, prompt_prefix, n_ctx, classnames, clip_model)

        self.n_cls = n_cls
        self.n_ctx = n_ctx
        self.name_lens = [num_tokens(name) for name in classnames]
        self.class_token_position = opts.CLASS_TOKEN_POSITION

    def text_input(self, image_features=None):
        return self(), self.tokenized_prompts

    def forward(self):
        ctx = self.ctx
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.n_cls, -1, -1)  # (n_cls, n_ctx, dim)
        prefix, suffix = self.token_prefix, self.token_suffix

        if self.class_token_position == "end":
            # [SOS][ctx][class][.][EOS]
            return torch.cat([prefix, ctx, suffix], dim=1)

        prompts = []
        half = self.n_ctx // 2
        for i, name_len in enumerate(self.name_lens):
            class_i = suffix[i:i + 1, :name_len, :]
            rest_i = suffix[i:i + 1, name_len:, :]  # "." EOS and padding
            ctx_i = ctx[i:i + 1]
            if self.class_token_position == "middle":
                # [SOS][ctx half 1][class][ctx half 2][.][EOS]
                parts = [prefix[i:i + 1], ctx_i[:, :half], class_i, ctx_i[:, half:], rest_i]
            else:
                # [SOS][class][ctx][.][EOS]
                parts = [prefix[i:i + 1], class_i, ctx_i, rest_i]
            prompts.append(torch.cat(parts, dim=1))
        return torch.cat(prompts, dim=0)  # (n_cls, n_tokens, dim)


class CustomCLIP(PromptedCLIP):
    def __init__(self, cfg, classnames, clip_model):
        super().__init__(clip_model, PromptLearner(cfg, classnames, clip_model))


@TRAINER_REGISTRY.register()
class CoOp(PromptTrainer):
    """Context Optimization, https://arxiv.org/abs/2109.01134."""

    CONFIG_SECTION = "COOP"
    SHAPE_KEYS = ("N_CTX", "CSC", "CTX_INIT")  # with CTX_INIT its token count is the context length

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        check_choice("TRAINER.COOP.CLASS_TOKEN_POSITION", cfg.TRAINER.COOP.CLASS_TOKEN_POSITION,
                     CLASS_TOKEN_POSITIONS)

    def build_custom_clip(self, cfg, classnames, clip_model):
        return CustomCLIP(cfg, classnames, clip_model)
