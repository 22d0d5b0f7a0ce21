"""MVLPT: multitask vision-language prompt tuning (Shen et al., WACV 2024), as in its release
(sIncerass/MVLPT; docs/mvlpt.md has the method, the recipes and the release's defects).

One prompt learner covers the three variants; token counts choose them (0 switches a branch off):

* MCoOp  ``COOP.N_CTX`` n_t > 0, ``VPT.N_CTX`` 0: CoOp's context "X..X {class}." with the class
  name in the MIDDLE of the context by default (``COOP.CLASS_TOKEN_POSITION``);
* MVPT   n_t = 0, n_v > 0: VPT-deep. After ``ln_pre`` n_v prompts join the sequence (no positional
  embedding, no ``ln_pre``); before block i >= 1 they are replaced by ``vpt_embeddings_deep[i-1]``.
  The text is the fixed "a photo of a {class}." (encoded once: nothing on that side learns);
* MUPT   both > 0 with ``PROJECT_METHOD transformer``: the text context (n_t, text width) and the
  visual prompts (L, n_v, vision width; row 0 the shallow prompt) are down-projected to
  ``PROJECT_DIM``, run as ONE set of n_t + L n_v tokens through a 1-block, 1-head transformer,
  and up-projected back. ``UPT_MIXING mixed`` (default) feeds them as one sequence, so the
  tokens attend to each other; ``compat`` is the release's layout (a batch-first tensor into the
  sequence-first block: n_t + L n_v sequences of ONE token, no token sees another).

Our vision tower appends prompt tokens after the patches and before ``ln_pre``; the release's
prompts skip ``ln_pre``, so the appended slots hold zeros that block 0 overwrites with the shallow
prompts (where in the sequence they sit does not matter: image tokens have no mask and the prompts
no positional embedding).

State-dict keys are the release's: ``ctx``, ``vpt_embeddings`` (1, n_v, d), ``vpt_embeddings_deep``
(L-1, n_v, d), ``vpt_proj.*`` (``VPT.PROJECT`` > -1), ``mvlpt_proj_ctx_{coop,vpt}_{pre,post}.*``
and ``mvlpt_proj.resblocks.0.*``; release files may say ``upt_proj`` (an alias) and hold the
class-dependent ``token_prefix`` / ``token_suffix`` (dropped). Our checkpoints also record the
variant, the mixing and the backbone's shape (``"mvlpt"`` entry), so a source prompt that does not
fit the target run is refused with what was expected.
"""
import math
import os.path as osp
import warnings

import torch
import torch.nn as nn

from clip.model import BlockPrompt, Transformer
from dassl.engine import TRAINER_REGISTRY
from dassl.utils import CheckpointError, ConfigError, MissingFileError, load_checkpoint

from trainers.base import PromptTrainer, check_choice
from trainers.common import CLASS_BUFFERS, clean_classname, context_length, initial_context, num_tokens, \
    register_class_prompts
from trainers.ivlp import require_vit
from trainers.model import PromptedCLIP, PromptProvider

OPTIONS = {
    "TRAINER.MVLPT": {
        "PREC": ("fp16", "precision: fp16 (the prompts are fp16 leaves, as in the release), fp32, amp or bf16"),
        "PROJECT_METHOD": ("transformer", "MUPT coupling of text and visual prompts: transformer (the release's "
                                          "UPT block) or identity (independent prompts); the release's mlp crashes"),
        "PROJECT_DIM": (128, "width of MUPT's shared transformer (down-/up-projections when it differs)"),
        "UPT_MIXING": ("mixed", "MUPT token layout in the shared transformer: mixed (one sequence, tokens attend "
                                "to each other) or compat (the release's: every token alone, no mixing)"),
        "SOURCE_CHECKPOINT": ("", "start from this source prompt (a checkpoint file, or a run / averaged folder "
                                  "with prompt_learner/model-best.pth.tar): its class-independent tensors"),
        "TASK_AWARE_EVAL": (True, "on a joined dataset, score each test/val sample among its own dataset's "
                                  "classes (the release's per-task evaluation) whatever DATASET.LABEL_SPACE"),
    },
    "TRAINER.MVLPT.COOP": {
        "N_CTX": (0, "text context tokens n_t (MCoOp 16, MUPT 4; 0: no learned text)"),
        "CSC": (False, "class-specific context; not supported (False in every release script)"),
        "CTX_INIT": ("", "initialise the text context from these words (then N_CTX is their token count)"),
        "CLASS_TOKEN_POSITION": ("middle", "where the class name sits in the context: middle, end or front"),
    },
    "TRAINER.MVLPT.VPT": {
        "N_CTX": (0, "visual prompt tokens n_v per layer (MVPT 16, MUPT 4; 0: no visual prompts)"),
        "DEEP": (True, "a new set of n_v prompts before every vision block (VPT-deep); False: the first only"),
        "PROJECT": (-1, "> -1: learn k-dimensional visual prompts and a Linear k -> vision width; -1: none"),
        "DROPOUT": (0.0, "dropout on the visual prompts (one mask for the whole batch)"),
        "CTX_INIT": ("", "unsupported, as in the release (it raises): leave empty"),
    },
}

CLASS_TOKEN_POSITIONS = ("middle", "end", "front")
PROJECT_METHODS = ("transformer", "identity")
UPT_MIXINGS = ("mixed", "compat")
FIXED_TEXT = "a photo of a"  # MVPT's text: "a photo of a {class}."
# Buffers derived from the class names: never transferred (the release saves the first two).
DROPPED_KEYS = CLASS_BUFFERS + ("tokenized_prompts",)
ALIASES = (("upt_proj", "mvlpt_proj"),)  # older release checkpoints (its "issue 1" key fix)


def class_prompts(prefix, ctx, suffix, name_lens, position):
    """Token embeddings of every class prompt: (n_cls, n_tokens, width).

    prefix: (n_cls, 1, width) SOS; ctx: (n_ctx, width); suffix: (n_cls, *, width) = name, ".", EOT, pad.
    """
    n_cls = prefix.shape[0]
    ctx = ctx.to(prefix.dtype).unsqueeze(0).expand(n_cls, -1, -1)
    if position == "end":  # [SOS][ctx][name][.][EOT]
        return torch.cat([prefix, ctx, suffix], dim=1)
    half = ctx.shape[1] // 2
    prompts = []
    for i, length in enumerate(name_lens):
        name, rest = suffix[i:i + 1, :length], suffix[i:i + 1, length:]
        if position == "middle":  # [SOS][ctx first half][name][ctx second half][.][EOT]
            parts = [prefix[i:i + 1], ctx[i:i + 1, :half], name, ctx[i:i + 1, half:], rest]
        else:  # front: [SOS][name][ctx][.][EOT]
            parts = [prefix[i:i + 1], name, ctx[i:i + 1], rest]
        prompts.append(torch.cat(parts, dim=1))
    return torch.cat(prompts)


def variant_name(text, vision, coupled):
    if coupled:
        return "MUPT"
    if text and vision:
        return "MCoOp+MVPT (PROJECT_METHOD identity)"
    return "MCoOp" if text else "MVPT"


def variant_of_keys(keys):
    """The variant a state dict holds, read off its keys."""
    keys = list(keys)
    return variant_name("ctx" in keys, "vpt_embeddings" in keys, any(k.startswith("mvlpt_proj") for k in keys))


def linear_or_identity(width_in, width_out, dtype):
    # the release maps only when the widths differ
    return nn.Identity() if width_in == width_out else nn.Linear(width_in, width_out).to(dtype)


class MultitaskVLPromptLearner(PromptProvider):
    """MVLPT's prompts (see the module docstring); ``opts`` is cfg.TRAINER.MVLPT."""

    def __init__(self, clip_model, classnames, opts):
        super().__init__()
        dtype = clip_model.dtype  # fp16 under PREC fp16: the prompts are fp16 leaves, as in the release
        vision = clip_model.visual
        text_width = clip_model.ln_final.weight.shape[0]
        vision_width = vision.conv1.weight.shape[0]
        patch = vision.conv1.weight.shape[-1]
        self.n_vision_blocks = len(vision.transformer.resblocks)
        self.backbone = {"text_width": text_width, "vision_width": vision_width, "patch_size": patch,
                         "vision_layers": self.n_vision_blocks, "input_resolution": vision.input_resolution}
        self.n_ctx_text, self.n_ctx_vision = int(opts.COOP.N_CTX), int(opts.VPT.N_CTX)
        self.class_token_position = opts.COOP.CLASS_TOKEN_POSITION

        # ---- text: CoOp's context, or MVPT's fixed template
        if self.n_ctx_text > 0:
            ctx, prefix, self.n_ctx_text = initial_context(opts.COOP.CTX_INIT, self.n_ctx_text, clip_model)
            self.ctx = nn.Parameter(ctx)  # (n_t, text_width)
        else:
            self.ctx, prefix = None, FIXED_TEXT
        names = register_class_prompts(self, prefix, self.n_ctx_text, classnames, clip_model, persistent=False)
        self.name_lens = [num_tokens(name) for name in names]
        self._fixed_text = None  # MVPT: (key, class text features), computed once

        # ---- vision: VPT's prompts, uniform +-sqrt(6 / (3 p^2 + d)) (VPT's Xavier form)
        self.vpt_width = vision_width
        self.vpt_dropout = nn.Dropout(float(opts.VPT.DROPOUT))
        self.vpt_proj = nn.Identity()
        self.vpt_embeddings = self.vpt_embeddings_deep = None
        if self.n_ctx_vision > 0:
            prompt_dim = vision_width
            if int(opts.VPT.PROJECT) > -1:
                prompt_dim = int(opts.VPT.PROJECT)
                self.vpt_proj = nn.Linear(prompt_dim, vision_width)
                nn.init.kaiming_normal_(self.vpt_proj.weight, a=0, mode="fan_out")
                self.vpt_proj.to(dtype)
            bound = math.sqrt(6.0 / (3 * patch * patch + prompt_dim))
            shallow = torch.empty(1, self.n_ctx_vision, prompt_dim).uniform_(-bound, bound)
            self.vpt_embeddings = nn.Parameter(shallow.to(dtype))  # (1, n_v, d)
            if opts.VPT.DEEP:
                deep = torch.empty(self.n_vision_blocks - 1, self.n_ctx_vision, prompt_dim).uniform_(-bound, bound)
                self.vpt_embeddings_deep = nn.Parameter(deep.to(dtype))  # (L - 1, n_v, d)

        # ---- MUPT: one shared transformer over both sets of prompts
        self.coupled = self.ctx is not None and self.vpt_embeddings is not None and \
            opts.PROJECT_METHOD == "transformer"
        self.upt_mixing = opts.UPT_MIXING if self.coupled else None
        if self.coupled:
            dim = int(opts.PROJECT_DIM)
            prompt_dim = self.vpt_embeddings.shape[-1]
            self.mvlpt_proj_ctx_coop_pre = linear_or_identity(text_width, dim, dtype)
            self.mvlpt_proj_ctx_coop_post = linear_or_identity(dim, text_width, dtype)
            self.mvlpt_proj_ctx_vpt_pre = linear_or_identity(prompt_dim, dim, dtype)
            self.mvlpt_proj_ctx_vpt_post = linear_or_identity(dim, prompt_dim, dtype)
            self.mvlpt_proj = Transformer(width=dim, layers=1, heads=1)  # fp32, no mask (as in the release)
        self.variant = variant_name(self.ctx is not None, self.vpt_embeddings is not None, self.coupled)

    # ------------------------------------------------------------ the prompts
    def prompts(self):
        """-> (text ctx (n_t, text_width) or None, shallow (n_v, d) or None, deep (L-1, n_v, d) or None)."""
        shallow, deep = self.vpt_embeddings, self.vpt_embeddings_deep
        if not self.coupled:
            return self.ctx, None if shallow is None else shallow[0], deep
        visual = shallow if deep is None else torch.cat([shallow, deep])  # (rows, n_v, d)
        rows, n_v, d = visual.shape
        n_t = self.ctx.shape[0]
        tokens = torch.cat([self.mvlpt_proj_ctx_coop_pre(self.ctx),
                            self.mvlpt_proj_ctx_vpt_pre(visual.reshape(rows * n_v, d))]).float()  # (T, dim)
        if self.upt_mixing == "compat":
            # the release's (1, T, dim) into the sequence-first block: T sequences of one token each
            mixed = self.mvlpt_proj(tokens.unsqueeze(0))[0]
        else:
            mixed = self.mvlpt_proj(tokens.unsqueeze(1))[:, 0]  # one sequence of T tokens
        mixed = mixed.to(self.ctx.dtype)
        text = self.mvlpt_proj_ctx_coop_post(mixed[:n_t])
        visual = self.mvlpt_proj_ctx_vpt_post(mixed[n_t:]).reshape(rows, n_v, d)
        return text, visual[0], (visual[1:] if rows > 1 else None)

    def description(self):
        """What a checkpoint records beside the tensors (checked when it is loaded)."""
        return {"variant": self.variant, "n_ctx_text": self.n_ctx_text, "n_ctx_vision": self.n_ctx_vision,
                "upt_mixing": self.upt_mixing, "backbone": dict(self.backbone)}

    # ------------------------------------------------------------------ text
    def text_input(self, image_features=None):
        ctx = self.prompts()[0]
        if ctx is None:
            return torch.cat([self.token_prefix, self.token_suffix], dim=1), self.tokenized_prompts
        return class_prompts(self.token_prefix, ctx, self.token_suffix, self.name_lens,
                             self.class_token_position), self.tokenized_prompts

    def class_text_features(self, model, image_features):
        if self.ctx is not None:
            return super().class_text_features(model, image_features)
        # MVPT: nothing on the text side learns (the release re-encodes it every step)
        key = (self.token_prefix.device, model.dtype, model._raw)
        if self._fixed_text is None or self._fixed_text[0] != key:
            with torch.no_grad():
                self._fixed_text = (key, super().class_text_features(model, image_features))
        return self._fixed_text[1]

    # ---------------------------------------------------------------- vision
    def _vision_tokens(self, tokens, dtype):
        return self.vpt_dropout(self.vpt_proj(tokens)).to(dtype)  # (n_v, vision_width)

    def image_extra_tokens(self, dtype):
        if self.vpt_embeddings is None:
            return None
        # room for the prompts, overwritten by block 0: the release's prompts skip ln_pre
        return self.vpt_embeddings.new_zeros(self.n_ctx_vision, self.vpt_width).to(dtype)

    def image_prompts(self, dtype):
        if self.vpt_embeddings is None:
            return None
        _, shallow, deep = self.prompts()
        entries = [BlockPrompt(tokens=self._vision_tokens(shallow, dtype))] + [None] * (self.n_vision_blocks - 1)
        if deep is not None:
            for block in range(1, self.n_vision_blocks):
                entries[block] = BlockPrompt(tokens=self._vision_tokens(deep[block - 1], dtype))
        return entries


# ---------------------------------------------------------------------------
# Loading prompts: eval-only (--model-dir), transfer (SOURCE_CHECKPOINT), best-val reload
# ---------------------------------------------------------------------------
def checkpoint_file(path, model_name="prompt_learner"):
    """A checkpoint file, or the one a run / averaged folder holds: its model-best.pth.tar (best_val runs,
    averaged prompts), else the last checkpoint saved (the file its ``checkpoint`` pointer names)."""
    if osp.isfile(path):
        return path
    for folder in (osp.join(path, model_name), path):
        best = osp.join(folder, "model-best.pth.tar")
        if osp.isfile(best):
            return best
        pointer = osp.join(folder, "checkpoint")
        if osp.isfile(pointer):
            with open(pointer) as f:
                last = osp.join(folder, f.readline().strip())
            if osp.isfile(last):
                return last
    raise MissingFileError(f'No MVLPT checkpoint at "{path}": expected a checkpoint file, or a folder holding '
                           f"{model_name}/model-best.pth.tar or {model_name}/checkpoint (a training run's output, "
                           "or tools/average_checkpoints.py's).")


def _describe_backbone(backbone):
    return (f"vision width {backbone['vision_width']}, {backbone['vision_layers']} vision blocks, patch "
            f"{backbone['patch_size']}, {backbone['input_resolution']}px, text width {backbone['text_width']}")


def prompt_state(learner, checkpoint, path, mixing_key="TRAINER.MVLPT.UPT_MIXING"):
    """The class-independent tensors of ``checkpoint`` under our names, checked against ``learner``.

    Renames the ``upt_proj`` alias, drops the class-dependent buffers, and refuses (CheckpointError,
    naming what was expected) a prompt of another variant, token count or backbone.
    """
    state = {}
    for key, value in checkpoint["state_dict"].items():
        for old, new in ALIASES:
            if key.startswith(old):
                key = new + key[len(old):]
        if key not in DROPPED_KEYS:
            state[key] = value
    ours = learner.state_dict()
    recorded = checkpoint.get("mvlpt")
    if recorded:
        if recorded.get("backbone") != learner.backbone:
            raise CheckpointError(
                f'"{path}" was trained on another backbone ({_describe_backbone(recorded["backbone"])}); this run '
                f"expects {_describe_backbone(learner.backbone)}. Set MODEL.BACKBONE to the source's backbone.")
        if recorded.get("variant") == learner.variant == "MUPT" and recorded.get("upt_mixing") != learner.upt_mixing:
            raise CheckpointError(
                f'"{path}" holds a MUPT prompt trained with UPT_MIXING {recorded.get("upt_mixing")}; this run uses '
                f"{learner.upt_mixing}. Set {mixing_key} {recorded.get('upt_mixing')} to use it.")
    found, expected = variant_of_keys(state), learner.variant
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    if missing or unexpected:
        raise CheckpointError(
            f'"{path}" holds a {found} prompt ({sorted(state)}), but this run builds {expected} '
            f"(expects {sorted(ours)}; missing {missing}, unexpected {unexpected}). Set TRAINER.MVLPT.COOP.N_CTX, "
            "TRAINER.MVLPT.VPT.N_CTX / DEEP / PROJECT and PROJECT_METHOD as in the source run.")
    wrong = [f"{k}: {tuple(state[k].shape)} in the file, {tuple(ours[k].shape)} expected"
             for k in ours if tuple(state[k].shape) != tuple(ours[k].shape)]
    if wrong:
        raise CheckpointError(
            f'"{path}" does not fit this {expected} run ({_describe_backbone(learner.backbone)}): '
            + "; ".join(wrong) + ". Use the source's backbone and token counts (N_CTX, PROJECT_DIM).")
    if learner.coupled and not recorded and learner.upt_mixing != "compat":
        warnings.warn(f'"{path}" records no UPT_MIXING (a release checkpoint?): the release trained MUPT without '
                      f"token mixing; set {mixing_key} compat to reproduce its predictions.", stacklevel=2)
    return state


def load_prompts(learner, path, what):
    """Load the prompts of checkpoint file ``path`` into ``learner``; print what was loaded."""
    checkpoint = load_checkpoint(path)
    state = prompt_state(learner, checkpoint, path)
    learner.load_state_dict(state, strict=True)
    dropped = sorted(k for k in checkpoint["state_dict"] if k in DROPPED_KEYS)
    aliased = sorted(k for k in checkpoint["state_dict"] if any(k.startswith(old) for old, _ in ALIASES))
    print(f'{what}: loaded {len(state)} class-independent tensors of a {learner.variant} prompt from "{path}" '
          f"(epoch {checkpoint.get('epoch')}): "
          + ", ".join(f"{k} {tuple(v.shape)}" for k, v in state.items())
          + (f"; class-dependent buffers skipped: {dropped}" if dropped else "")
          + (f"; {len(aliased)} keys read under their old name upt_proj" if aliased else ""))
    return checkpoint


class CustomCLIP(PromptedCLIP):
    def __init__(self, clip_model, classnames, opts):
        super().__init__(clip_model, MultitaskVLPromptLearner(clip_model, classnames, opts))


def check_text_fits(classnames, n_ctx, clip_model):
    """Every class prompt (SOS, context or "a photo of a", name, ".", EOT) must fit the text context."""
    limit = context_length(clip_model)
    words = num_tokens(FIXED_TEXT) if n_ctx == 0 else n_ctx
    too_long = [(name, num_tokens(clean_classname(name))) for name in classnames
                if 3 + words + num_tokens(clean_classname(name)) > limit]
    if too_long:
        name, tokens = max(too_long, key=lambda item: item[1])
        what = f"{n_ctx} context tokens" if n_ctx else f'the template "{FIXED_TEXT} {{class}}."'
        raise ConfigError(
            f"{len(too_long)} class name(s) do not fit the {limit}-token text context with {what}: the longest, "
            f"{name!r}, has {tokens} tokens; expected at most {limit - 3 - words}. Shorten the class names "
            f"(e.g. DATASET.IMAGE_FOLDER.CLASSNAMES) or lower TRAINER.MVLPT.COOP.N_CTX.")


@TRAINER_REGISTRY.register()
class MVLPT(PromptTrainer):
    """Multitask vision-language prompt tuning, https://arxiv.org/abs/2211.11720 (MCoOp, MVPT, MUPT)."""

    CONFIG_SECTION = "MVLPT"
    MODEL_NAME = "prompt_learner"  # the release's checkpoint folder

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        opts = cfg.TRAINER.MVLPT
        if opts.PROJECT_METHOD == "mlp":
            raise ConfigError("TRAINER.MVLPT.PROJECT_METHOD mlp is not available: the release's mlp coupling "
                              "cannot run (it names a non-existent nn.GeLU). Use transformer or identity.")
        check_choice("TRAINER.MVLPT.PROJECT_METHOD", opts.PROJECT_METHOD, PROJECT_METHODS)
        check_choice("TRAINER.MVLPT.UPT_MIXING", opts.UPT_MIXING, UPT_MIXINGS)
        check_choice("TRAINER.MVLPT.COOP.CLASS_TOKEN_POSITION", opts.COOP.CLASS_TOKEN_POSITION, CLASS_TOKEN_POSITIONS)
        if int(opts.COOP.N_CTX) < 0 or int(opts.VPT.N_CTX) < 0 or int(opts.COOP.N_CTX) + int(opts.VPT.N_CTX) == 0:
            raise ConfigError(f"TRAINER.MVLPT.COOP.N_CTX is {opts.COOP.N_CTX} and TRAINER.MVLPT.VPT.N_CTX is "
                              f"{opts.VPT.N_CTX}; expected counts >= 0, at least one > 0 (MCoOp: 16 and 0, MVPT: "
                              "0 and 16, MUPT: 4 and 4).")
        if opts.COOP.CSC:
            raise ConfigError("TRAINER.MVLPT.COOP.CSC True is not supported: a class-specific context cannot "
                              "transfer to other tasks (every release script sets False).")
        if opts.VPT.CTX_INIT:
            raise ConfigError("TRAINER.MVLPT.VPT.CTX_INIT must be empty: visual prompts have no word "
                              "initialisation (the release raises too).")
        if int(opts.PROJECT_DIM) % 64 and opts.PROJECT_METHOD == "transformer":
            raise ConfigError(f"TRAINER.MVLPT.PROJECT_DIM is {opts.PROJECT_DIM}; expected a multiple of 64.")

    def build_custom_clip(self, cfg, classnames, clip_model):
        opts = cfg.TRAINER.MVLPT
        require_vit(clip_model, type(self).__name__)
        check_text_fits(classnames, int(opts.COOP.N_CTX), clip_model)
        model = CustomCLIP(clip_model, classnames, opts)
        learner = model.prompt_learner
        print(f"MVLPT variant {learner.variant}: {learner.n_ctx_text} text tokens (class name: "
              f"{learner.class_token_position}), {learner.n_ctx_vision} visual tokens per layer"
              + (f" x {learner.n_vision_blocks} layers" if learner.vpt_embeddings_deep is not None else
                 " (first layer only)" if learner.vpt_embeddings is not None else ""))
        if learner.coupled and learner.upt_mixing == "compat":
            print("MVLPT compat: TRAINER.MVLPT.UPT_MIXING compat reproduces the release's MUPT layout (release "
                  "defect D4): every prompt token passes the shared transformer alone, no token attends to "
                  "another. UPT_MIXING mixed lets them attend to each other.")
        return model

    def build_model(self):
        super().build_model()
        source = self.options().SOURCE_CHECKPOINT
        if source:
            load_prompts(self.model.prompt_learner, checkpoint_file(source, model_name=self.MODEL_NAME),
                         "Source prompt (TRAINER.MVLPT.SOURCE_CHECKPOINT)")

    def head_logits(self, features, dataset_index=None):
        """At test time (``dataset_index`` given) with TASK_AWARE_EVAL, logits restricted to the sample's dataset."""
        logits = self.model.head.logits(features)
        joined = getattr(self.dm.dataset, "class_offsets", None) is not None
        if dataset_index is not None and joined and (self.per_task() or self.options().TASK_AWARE_EVAL):
            logits = self.dm.dataset.restrict_logits(logits, dataset_index)
        return logits

    def checkpoint_extras(self, name):
        extras = super().checkpoint_extras(name)
        if name == self.MODEL_NAME:
            extras["mvlpt"] = self.model.prompt_learner.description()
        return extras

    def load_model(self, directory, epoch=None):
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        path = osp.join(directory, self.MODEL_NAME, model_file)
        if not osp.isfile(path):
            raise MissingFileError(f'No checkpoint at "{path}". Expected --model-dir to be a training output folder '
                                   f"holding {self.MODEL_NAME}/{model_file}; check --model-dir and --load-epoch "
                                   "(omit --load-epoch for model-best.pth.tar).")
        load_prompts(self.model.prompt_learner, path, f"Loading weights to {self.MODEL_NAME}")
