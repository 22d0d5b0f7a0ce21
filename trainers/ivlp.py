"""Replace-style deep prompts: IVLP (independent vision-language prompting), deep language prompting
and VPT-deep, as in the MaPLe release (Khattak et al., CVPR 2023) and PromptSRC's (ICCV 2023).

Text: the template "<CTX_INIT words or X X ..> {class}." with positions 1..N_CTX_TEXT replaced by the
learned ``ctx`` (with N_CTX_TEXT 2 and "a photo of a", only "a photo" is learned: "of a" stays
fixed, as in the release); text blocks 1..PROMPT_DEPTH_TEXT - 1 overwrite positions
[1, 1 + N_CTX_TEXT) with their own tensor before the block. Vision: N_CTX_VISION tokens appended
after the positional embedding (before ln_pre: ``vpt``); vision blocks 1..PROMPT_DEPTH_VISION - 1
overwrite those last positions with their own tensor. Blocks past the depth receive nothing: the
slots carry their evolved states on. Every inserted tensor is cast to fp16 and back, as the
release does whatever PREC says (``ROUND_PROMPTS_FP16``, default on; off: inserted as they are).

State-dict keys: ``ctx``, ``vpt``, ``text_deep.<block>``, ``vision_deep.<block>`` (block = the
index of the block that receives it). The release keeps its tensors inside CLIP
(``prompt_learner.ctx``, ``image_encoder.VPT``,
``{image,text}_encoder.transformer.resblocks.<block>.VPT_shallow``) and saves the whole model: such
a checkpoint loads through ``from_release_key``.

* ``IVLP`` (``TRAINER.IVLP``): both towers; with ``PROMPT_DEPTH_VISION 0`` (and N_CTX_VISION 0),
  deep language prompting.
* ``VPT`` (``TRAINER.VPT``): vision only; the text side is the frozen "a photo of a {}." classifier.
"""
import torch
import torch.nn as nn

from clip.model import BlockPrompt
from dassl.engine import TRAINER_REGISTRY
from dassl.utils import ConfigError, plural

from trainers.base import PromptTrainer
from trainers.common import clean_classname, num_tokens, register_class_prompts, tokenize
from trainers.model import PromptedCLIP, PromptProvider
from trainers.zeroshot_text import zeroshot_text_features

OPTIONS = {
    "TRAINER.IVLP": {
        "N_CTX_VISION": (2, "vision prompt tokens per prompted block"),
        "N_CTX_TEXT": (2, "text prompt tokens (layer 0: the first N_CTX_TEXT words of CTX_INIT are learned)"),
        "CTX_INIT": ("a photo of a", "words before the class name; used when N_CTX_TEXT <= 4 (the release's rule)"),
        "PREC": ("fp16", "precision: fp16, fp32, amp or bf16"),
        "PROMPT_DEPTH_VISION": (9, "vision blocks that receive prompts, the input counting as the first (0: none)"),
        "PROMPT_DEPTH_TEXT": (9, "text blocks that receive prompts, the input counting as the first (>= 1)"),
        "ROUND_PROMPTS_FP16": (True, "round inserted prompts to fp16 as the release does under every PREC"),
    },
    "TRAINER.VPT": {
        "N_CTX_VISION": (2, "vision prompt tokens per prompted block"),
        "CTX_INIT": ("a photo of a", "unused, as in the release: the text is 'a photo of a {}.'"),
        "PREC": ("fp16", "precision: fp16, fp32, amp or bf16"),
        "PROMPT_DEPTH_VISION": (1, "vision blocks that receive prompts, the input counting as the first (>= 1)"),
        "ROUND_PROMPTS_FP16": (True, "round inserted prompts to fp16 as the release does under every PREC"),
    },
}

INIT_STD = 0.02
MAX_INIT_WORDS_CTX = 4  # the release uses CTX_INIT only when N_CTX <= 4


def require_vit(clip_model, trainer):
    if not hasattr(clip_model.visual, "transformer"):
        raise ConfigError(
            f"{trainer} puts prompts into the blocks of a vision transformer, but MODEL.BACKBONE is a ResNet "
            f"({type(clip_model.visual).__name__}). Use a ViT backbone, e.g. MODEL.BACKBONE.NAME ViT-B/16."
        )


def check_depth(key, depth, clip_model, tower, minimum=0):
    blocks = len((clip_model.visual if tower == "vision" else clip_model).transformer.resblocks)
    if not minimum <= depth <= blocks:
        raise ConfigError(f"{key} is {depth}, but the {tower} tower has {blocks} blocks: expected {minimum}..{blocks}.")
    return depth


def check_text_room(key, n_ctx, classnames, clip_model, prefix_words=""):
    """The template must fit the context: SOS + prefix (>= n_ctx) + name + "." + EOT <= 77."""
    room = clip_model.positional_embedding.shape[0] - 3  # SOS, ".", EOT
    longest = max(classnames, key=lambda n: num_tokens(clean_classname(n)))
    name = num_tokens(clean_classname(longest))
    prefix = max(n_ctx, num_tokens(prefix_words) if prefix_words else 0)
    if prefix + name > room:
        raise ConfigError(
            f"{key} is {n_ctx}, but the longest class name ({longest!r}, {name} tokens) leaves room for at most "
            f"{room - name - (prefix - n_ctx)} context tokens in the {room + 3}-token text input."
        )


def replace_context(ctx_init, n_ctx, clip_model):
    """Layer-0 text context, the release's rule -> (ctx (n_ctx, width), prompt prefix words).

    CTX_INIT set and n_ctx <= 4: the template's prefix is CTX_INIT and ctx starts from the token
    embeddings of its first n_ctx tokens (the rest of the words stay fixed); else "X X .." and
    N(0, 0.02^2).
    """
    width = clip_model.ln_final.weight.shape[0]
    words = clean_classname(ctx_init).strip() if isinstance(ctx_init, str) else ""
    if words and n_ctx <= MAX_INIT_WORDS_CTX:
        with torch.no_grad():
            embedding = clip_model.token_embedding(tokenize(words, clip_model)).float()
        return embedding[0, 1:1 + n_ctx].clone(), words
    ctx = torch.empty(n_ctx, width)
    nn.init.normal_(ctx, std=INIT_STD)
    return ctx, " ".join(["X"] * n_ctx)


def inserted_prompt(tensor, dtype, round_fp16):
    """A prompt as the block receives it: rounded to fp16 first when the release's rounding is on."""
    return (tensor.half() if round_fp16 else tensor).to(dtype)


def deep_tensors(first, depth, n, width):
    """{str(block): (n, width) ~ N(0, 0.02^2)} for blocks first..depth-1."""
    tensors = nn.ParameterDict()
    for block in range(first, depth):
        tensors[str(block)] = nn.Parameter(torch.empty(n, width).normal_(std=INIT_STD))
    return tensors


class VLPromptLearner(PromptProvider):
    """IVLP's prompts (see the module docstring); ``n_ctx_vision`` 0 or ``depth_vision`` 0: text only."""

    def __init__(self, clip_model, classnames, n_ctx_text, n_ctx_vision, depth_text, depth_vision, ctx_init,
                 round_fp16=True, text=True):
        super().__init__()
        self.round_fp16 = bool(round_fp16)
        self.n_ctx_text, self.n_ctx_vision = int(n_ctx_text), int(n_ctx_vision)
        self.depth_text, self.depth_vision = int(depth_text), int(depth_vision)
        self.has_text = bool(text)
        if self.has_text:
            ctx, prefix = replace_context(ctx_init, self.n_ctx_text, clip_model)
            self.ctx = nn.Parameter(ctx)
            # derivable from the class names: kept out of our checkpoints (the release saves them)
            register_class_prompts(self, prefix, self.n_ctx_text, classnames, clip_model, persistent=False)
            self.text_deep = deep_tensors(1, self.depth_text, self.n_ctx_text, clip_model.transformer.width)
        vision_width = clip_model.visual.transformer.width
        if self.depth_vision > 0 and self.n_ctx_vision > 0:
            self.vpt = nn.Parameter(torch.empty(self.n_ctx_vision, vision_width).normal_(std=INIT_STD))
            self.vision_deep = deep_tensors(1, self.depth_vision, self.n_ctx_vision, vision_width)
        else:
            self.vpt = None
            self.vision_deep = nn.ParameterDict()

    def inserted(self, tensor, dtype):
        return inserted_prompt(tensor, dtype, self.round_fp16)

    def text_input(self, image_features=None):
        n_cls = self.token_prefix.shape[0]
        ctx = self.ctx.to(self.token_prefix.dtype).unsqueeze(0).expand(n_cls, -1, -1)
        return torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1), self.tokenized_prompts

    def _blocks(self, tensors, n_blocks, dtype):
        return [BlockPrompt(tokens=self.inserted(tensors[str(b)], dtype)) if str(b) in tensors else None
                for b in range(n_blocks)]

    def text_prompts(self, dtype):
        return self._blocks(self.text_deep, self._n_text_blocks, dtype) if self.has_text and len(self.text_deep) else None

    def image_prompts(self, dtype):
        return self._blocks(self.vision_deep, self._n_vision_blocks, dtype) if len(self.vision_deep) else None

    def image_extra_tokens(self, dtype):
        return None if self.vpt is None else self.inserted(self.vpt, dtype)

    def set_block_counts(self, clip_model):
        self._n_text_blocks = len(clip_model.transformer.resblocks)
        self._n_vision_blocks = len(clip_model.visual.transformer.resblocks)

    @staticmethod
    def from_release_key(key):
        """A key of the release's whole-model checkpoint -> ours (None: not a learnable tensor of ours)."""
        if key == "prompt_learner.ctx":
            return "ctx"
        if key == "image_encoder.VPT":
            return "vpt"
        for tower, ours in (("image_encoder", "vision_deep"), ("text_encoder", "text_deep")):
            head = f"{tower}.transformer.resblocks."
            if key.startswith(head) and key.endswith(".VPT_shallow"):
                return f"{ours}.{key[len(head):-len('.VPT_shallow')]}"
        return None


class FixedTextVLPromptLearner(VLPromptLearner):
    """VPT: vision prompts only; the class text features are a fixed zero-shot classifier."""

    def __init__(self, clip_model, text_features, **kwargs):
        super().__init__(clip_model, None, 0, text=False, depth_text=0, ctx_init="", **kwargs)
        self.register_buffer("text_features", text_features, persistent=False)

    def class_text_features(self, model, image_features):
        return self.text_features


class CustomCLIP(PromptedCLIP):
    def __init__(self, clip_model, prompt_learner):
        prompt_learner.set_block_counts(clip_model)
        super().__init__(clip_model, prompt_learner)


@TRAINER_REGISTRY.register()
class IVLP(PromptTrainer):
    """Independent vision-language prompting (the MaPLe / PromptSRC releases' IVLP); deep language
    prompting with PROMPT_DEPTH_VISION 0."""

    CONFIG_SECTION = "IVLP"
    MODEL_NAME = "VLPromptLearner"  # the release's checkpoint folder

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        if int(cfg.TRAINER.IVLP.PROMPT_DEPTH_TEXT) < 1:
            raise ConfigError(f"TRAINER.IVLP.PROMPT_DEPTH_TEXT is {cfg.TRAINER.IVLP.PROMPT_DEPTH_TEXT}; expected >= 1 "
                              "(the learned text context is the first prompted layer).")

    def build_custom_clip(self, cfg, classnames, clip_model):
        return CustomCLIP(clip_model, build_vl_prompt_learner(cfg.TRAINER.IVLP, "TRAINER.IVLP", clip_model,
                                                              classnames, type(self).__name__))


def build_vl_prompt_learner(opts, section, clip_model, classnames, trainer, cls=VLPromptLearner):
    """Check the options against the loaded CLIP and build the prompt learner."""
    require_vit(clip_model, trainer)
    depth_text = check_depth(f"{section}.PROMPT_DEPTH_TEXT", int(opts.PROMPT_DEPTH_TEXT), clip_model, "text", 1)
    depth_vision = check_depth(f"{section}.PROMPT_DEPTH_VISION", int(opts.PROMPT_DEPTH_VISION), clip_model, "vision")
    words = opts.CTX_INIT if isinstance(opts.CTX_INIT, str) and int(opts.N_CTX_TEXT) <= MAX_INIT_WORDS_CTX else ""
    check_text_room(f"{section}.N_CTX_TEXT", int(opts.N_CTX_TEXT), classnames, clip_model, words)
    learner = cls(clip_model, classnames, opts.N_CTX_TEXT, opts.N_CTX_VISION, depth_text, depth_vision, opts.CTX_INIT,
                  round_fp16=opts.ROUND_PROMPTS_FP16)
    print(f"{trainer}: text {plural(opts.N_CTX_TEXT, 'token')} x depth {depth_text}, vision "
          f"{plural(opts.N_CTX_VISION, 'token')} x depth {depth_vision}")
    return learner


@TRAINER_REGISTRY.register()
class VPT(PromptTrainer):
    """VPT-deep: vision prompts only, text features of frozen CLIP with "a photo of a {}."."""

    CONFIG_SECTION = "VPT"
    MODEL_NAME = "prompt_learner"  # the release's checkpoint folder

    def build_custom_clip(self, cfg, classnames, clip_model):
        opts = cfg.TRAINER.VPT
        require_vit(clip_model, type(self).__name__)
        depth = check_depth("TRAINER.VPT.PROMPT_DEPTH_VISION", int(opts.PROMPT_DEPTH_VISION), clip_model, "vision", 1)
        model = PromptedCLIP(clip_model)
        with torch.no_grad():
            text_features = zeroshot_text_features(model, clip_model, classnames, ["a photo of a {}."])
        learner = FixedTextVLPromptLearner(clip_model, text_features, n_ctx_vision=opts.N_CTX_VISION,
                                           depth_vision=depth, round_fp16=opts.ROUND_PROMPTS_FP16)
        return CustomCLIP(clip_model, learner)
