"""MaPLe: multi-modal prompt learning (Khattak et al., CVPR 2023), as in its release
(muzairkhattak/multimodal-prompt-learning).

Prompts replace positions in both towers (the ``tokens`` form of ``clip/model.py``), and the
vision prompts are linear maps of the text prompts (J = PROMPT_DEPTH, n = N_CTX):

* text layer 0: "<CTX_INIT> {class}." with positions 1..n replaced by ``ctx`` (with n = 2 and
  "a photo of a" only "a photo" is learned, "of a" stays fixed, as in the release);
* vision layer 0: ``proj(ctx)``, n tokens appended after the positional embedding (before ln_pre);
* blocks i = 1..J-1: text block i overwrites positions [1, 1 + n) with ``compound_prompts_text[i-1]``,
  vision block i overwrites the last n positions with
  ``compound_prompt_projections[i-1](compound_prompts_text[i-1])``;
* blocks >= J receive nothing: the slots carry their evolved states on (the release's carry-over).

The coupling runs text -> vision only: the vision tower has no free tensor, its gradients reach the
text prompts through the projections. Loss: cross-entropy (``ClassificationHead``).

State-dict keys are the release's: ``ctx`` (n, text width), ``proj.{weight,bias}`` (text width ->
vision width), ``compound_prompts_text.<i>`` (n, text width), ``compound_prompt_projections.<i>.
{weight,bias}``, i = 0..J-2. Our checkpoints hold these tensors only (the class buffers are rebuilt
from the class names); the release saves the whole model in fp16 (``prompt_learner.*`` beside the
frozen CLIP), which loads through ``trainers/common.py: whole_model_prompts``.

Precision. Under ``PREC fp16`` (GPU) ``ctx`` and ``proj`` are fp16 leaves, updated in fp16 without
loss scaling, and the deep tensors are fp32, as in the release. Under fp32, amp and bf16 every tensor
is an fp32 master copy (the release crashes in fp32: its fp16 ``proj`` meets an fp32 ``ctx``).
``ROUND_PROMPTS_FP16`` (default on, like the release whatever PREC says) rounds every inserted
tensor (text ctx, ``proj(ctx)``, deep text and vision prompts) to fp16 before the block receives it.
"""
import copy

import torch
import torch.nn as nn

from clip.model import BlockPrompt
from dassl.engine import TRAINER_REGISTRY
from dassl.utils import ConfigError, plural

from trainers.base import PromptTrainer
from trainers.common import register_class_prompts
from trainers.ivlp import (INIT_STD, MAX_INIT_WORDS_CTX, check_depth, check_text_room, inserted_prompt,
                           replace_context, require_vit)
from trainers.model import PromptedCLIP, PromptProvider

OPTIONS = {
    "TRAINER.MAPLE": {
        "N_CTX": (2, "prompt tokens per prompted layer of both towers (text layer 0: the first N_CTX words of "
                     "CTX_INIT are learned)"),
        "CTX_INIT": ("a photo of a", "words before the class name; used when N_CTX <= 4 (the release's rule)"),
        "PREC": ("fp16", "precision: fp16 (ctx and proj are fp16 leaves, as in the release), fp32, amp or bf16"),
        "PROMPT_DEPTH": (9, "blocks of each tower that receive prompts, the input counting as the first (>= 1)"),
        "ROUND_PROMPTS_FP16": (True, "round inserted prompts to fp16 as the release does under every PREC"),
    },
}


class MultiModalPromptLearner(PromptProvider):
    """MaPLe's prompts (see the module docstring)."""

    def __init__(self, clip_model, classnames, n_ctx, depth, ctx_init, round_fp16=True):
        super().__init__()
        self.n_ctx, self.depth, self.round_fp16 = int(n_ctx), int(depth), bool(round_fp16)
        text_width = clip_model.ln_final.weight.shape[0]
        vision_width = clip_model.visual.transformer.width
        # CLIP's dtype is fp16 exactly under PREC fp16: then ctx and proj are fp16 leaves, as in the release.
        leaf_dtype = clip_model.dtype
        ctx, prefix = replace_context(ctx_init, self.n_ctx, clip_model)
        self.ctx = nn.Parameter(ctx.to(leaf_dtype))  # (n_ctx, text_width)
        self.proj = nn.Linear(text_width, vision_width).to(leaf_dtype)
        self.compound_prompts_text = nn.ParameterList(
            [nn.Parameter(torch.empty(self.n_ctx, text_width).normal_(std=INIT_STD)) for _ in range(self.depth - 1)]
        )
        # The release deep-copies ONE initialised layer: every deep projection starts identical.
        projection = nn.Linear(text_width, vision_width)
        self.compound_prompt_projections = nn.ModuleList(
            [copy.deepcopy(projection) for _ in range(self.depth - 1)]
        )
        # rebuilt from the class names: kept out of our checkpoints
        register_class_prompts(self, prefix, self.n_ctx, classnames, clip_model, persistent=False)
        self.n_text_blocks = len(clip_model.transformer.resblocks)
        self.n_vision_blocks = len(clip_model.visual.transformer.resblocks)

    def inserted(self, tensor, dtype):
        return inserted_prompt(tensor, dtype, self.round_fp16)

    def text_input(self, image_features=None):
        n_cls = self.token_prefix.shape[0]
        ctx = self.inserted(self.ctx, self.token_prefix.dtype).unsqueeze(0).expand(n_cls, -1, -1)
        return torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1), self.tokenized_prompts

    def image_extra_tokens(self, dtype):
        return self.inserted(self.proj(self.ctx), dtype)  # (n_ctx, vision_width)

    def deep_vision_tokens(self):
        """[(n_ctx, vision_width)] for blocks 1..J-1: each deep text prompt through its projection."""
        return [projection(prompt)
                for projection, prompt in zip(self.compound_prompt_projections, self.compound_prompts_text)]

    def _blocks(self, deep, n_blocks, dtype):
        """One entry per block: block i = 1..J-1 gets deep[i - 1], the others nothing (None: no deep prompts)."""
        if not deep:
            return None
        entries = [None] * n_blocks
        for block, tokens in enumerate(deep, start=1):
            entries[block] = BlockPrompt(tokens=self.inserted(tokens, dtype))
        return entries

    def text_prompts(self, dtype):
        return self._blocks(list(self.compound_prompts_text), self.n_text_blocks, dtype)

    def image_prompts(self, dtype):
        return self._blocks(self.deep_vision_tokens(), self.n_vision_blocks, dtype)


def build_prompt_learner(opts, clip_model, classnames, section="TRAINER.MAPLE", trainer="MaPLe"):
    """Check the options against the loaded CLIP and build the prompt learner."""
    require_vit(clip_model, trainer)
    depth = int(opts.PROMPT_DEPTH)
    for tower in ("text", "vision"):  # one depth for both towers: it must fit the shallower one
        check_depth(f"{section}.PROMPT_DEPTH", depth, clip_model, tower, minimum=1)
    n_ctx = int(opts.N_CTX)
    words = opts.CTX_INIT if isinstance(opts.CTX_INIT, str) and n_ctx <= MAX_INIT_WORDS_CTX else ""
    check_text_room(f"{section}.N_CTX", n_ctx, classnames, clip_model, words)
    learner = MultiModalPromptLearner(clip_model, classnames, n_ctx, depth, opts.CTX_INIT,
                                      round_fp16=opts.ROUND_PROMPTS_FP16)
    template = f"{words.strip() or ' '.join(['X'] * n_ctx)} {{class}}."
    print(f'{trainer}: "{template}" with its first {plural(n_ctx, "token")} learned; {plural(n_ctx, "prompt token")} '
          f'x depth {depth} '
          "in both towers (vision prompts = linear maps of the text prompts)")
    return learner


class CustomCLIP(PromptedCLIP):
    def __init__(self, cfg, classnames, clip_model):
        super().__init__(clip_model, build_prompt_learner(cfg.TRAINER.MAPLE, clip_model, classnames))


@TRAINER_REGISTRY.register()
class MaPLe(PromptTrainer):
    """Multi-modal prompt learning, https://arxiv.org/abs/2210.03117."""

    CONFIG_SECTION = "MAPLE"
    MODEL_NAME = "MultiModalPromptLearner"  # the release's checkpoint folder

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        if int(cfg.TRAINER.MAPLE.N_CTX) < 1:
            raise ConfigError(f"TRAINER.MAPLE.N_CTX is {cfg.TRAINER.MAPLE.N_CTX}; expected >= 1 (the vision "
                              "prompts are maps of the text prompts: MaPLe needs at least one token).")

    def build_custom_clip(self, cfg, classnames, clip_model):
        return CustomCLIP(cfg, classnames, clip_model)
