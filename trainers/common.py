"""Pieces every CLIP prompt-learning trainer shares.

A trainer file (CoOp, CoCoOp, DPL, ...) keeps CoOp's cast -- PromptLearner,
CustomCLIP, the registered trainer -- and takes from here (and from trainers/base.py,
model.py, heads.py) what would otherwise be copied into each of them: loading CLIP,
precision handling, the prompted text encoder, class-name cleanup and the checkpoint
loading that drops class-dependent buffers.

Precision (``TRAINER.<METHOD>.PREC``):

=======  ==============  ===========================================
prec     CLIP weights    forward pass
=======  ==============  ===========================================
fp16     half (OpenAI)   plain; CPU falls back to fp32 with a warning
fp32     float32         plain
amp      float32         autocast float16 + GradScaler; CPU -> fp32
bf16     float32         autocast bfloat16 (works on CPU too)
=======  ==============  ===========================================
"""
import contextlib
import os.path as osp
import warnings

import torch
import torch.nn as nn

import clip
from dassl.utils import CheckpointError, ConfigError, MissingFileError, load_checkpoint, plural
try:  # our engine; upstream Dassl runs single-process and has no such module
    from dassl.utils.dist import average_gradients, get_rank, get_world_size, is_main_process
except ImportError:  # pragma: no cover - only on upstream Dassl
    def average_gradients(params):
        return None

    def get_rank():
        return 0

    def get_world_size():
        return 1

    def is_main_process():
        return True

PRECISIONS = ("fp16", "fp32", "amp", "bf16")

# Buffers that depend on the class names; a prompt learner trained on one set of
# classes must load on another (base-to-new, cross-dataset), so they are skipped.
CLASS_BUFFERS = ("token_prefix", "token_suffix")


# ---------------------------------------------------------------------------
# Loading CLIP
# ---------------------------------------------------------------------------
def load_clip_to_cpu(cfg):
    """The CLIP model named by the config, on CPU, with OpenAI's fp16 weights.

    ``cfg.MODEL.BACKBONE.PATH`` (a local TorchScript archive or state dict) wins
    over ``cfg.MODEL.BACKBONE.NAME`` (an official name such as ``ViT-B/16``,
    downloaded once into the CLIP cache).
    """
    backbone = cfg.MODEL.BACKBONE
    path = backbone.get("PATH", "")
    source = path if path else backbone.NAME
    if not source:
        raise ConfigError(
            "No CLIP backbone configured: MODEL.BACKBONE.NAME and MODEL.BACKBONE.PATH are "
            f"both empty. Set MODEL.BACKBONE.NAME to one of {clip.available_models()} "
            "or MODEL.BACKBONE.PATH to a local checkpoint file."
        )
    state_dict = clip.load_state_dict(source)
    model = clip.build_model(state_dict)
    return model.eval()


def prepare_clip(cfg, prec, device):
    """Load CLIP, check the input size and cast it for ``prec`` -> (clip_model, resolved prec).

    The first lines of every CLIP trainer's ``build_model``; the log names the weights used.
    """
    prec = resolve_precision(prec, device)
    print(f"Loading CLIP (backbone: {cfg.MODEL.BACKBONE.get('PATH', '') or cfg.MODEL.BACKBONE.NAME})")
    clip_model = load_clip_to_cpu(cfg)
    check_input_size(cfg, clip_model)
    cast_clip(clip_model, prec)
    print(f"Precision: {prec}")
    return clip_model, prec


def check_input_size(cfg, clip_model):
    """Images must have the resolution the vision tower was built for."""
    resolution = clip_model.visual.input_resolution
    size = tuple(cfg.INPUT.SIZE)
    if size != (resolution, resolution):
        raise ConfigError(
            f"INPUT.SIZE is {size} but the CLIP backbone expects {resolution}x{resolution} "
            f"images. Set INPUT.SIZE ({resolution}, {resolution}) in the trainer config "
            "or on the command line (INPUT.SIZE \"({r}, {r})\").".format(r=resolution)
        )


# ---------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------
def check_precision(prec):
    """Raise a readable error for an unknown PREC value (usable in check_cfg)."""
    if prec not in PRECISIONS:
        raise ConfigError(
            f"Unknown precision PREC={prec!r}; expected one of {list(PRECISIONS)} "
            "(set TRAINER.<METHOD>.PREC)."
        )
    return prec


def resolve_precision(prec, device):
    """The precision that will actually run on ``device``.

    Half-precision matmuls and GradScaler are GPU features; on CPU "fp16" and
    "amp" run as "fp32" (with a warning) so that every config also works there.
    """
    check_precision(prec)
    device = torch.device(device)
    if device.type == "cpu" and prec in ("fp16", "amp"):
        warnings.warn(
            f"PREC={prec!r} needs a GPU; running in fp32 on CPU instead "
            "(use PREC bf16 for reduced precision on CPU).",
            stacklevel=2,
        )
        return "fp32"
    return prec


def cast_clip(clip_model, prec):
    """Cast CLIP's weights for ``prec`` (an already resolved precision)."""
    check_precision(prec)
    if prec == "fp16":
        # OpenAI's layout: matmul weights in half, layer norms and embeddings in
        # float32 (CLIP's LayerNorm computes in float32 and casts back).
        clip.model.convert_weights(clip_model)
    else:
        # amp / bf16 keep float32 master weights; autocast lowers the matmuls.
        clip_model.float()
    return clip_model


def autocast(prec, device):
    """Context manager for the forward pass at precision ``prec``."""
    device = torch.device(device)
    if prec == "amp":
        return torch.autocast(device.type, dtype=torch.float16)
    if prec == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_grad_scaler(prec, device):
    """A GradScaler for "amp" (fp16 gradients underflow without it), else None."""
    if prec != "amp":
        return None
    return torch.amp.GradScaler(torch.device(device).type)


# ---------------------------------------------------------------------------
# Text side
# ---------------------------------------------------------------------------
def clean_classname(name):
    """Dataset folder names use underscores; prompts want words."""
    return name.replace("_", " ")


def context_length(clip_model):
    """Number of text positions the model was built with (77 for OpenAI CLIP)."""
    return clip_model.positional_embedding.shape[0]


def tokenize(texts, clip_model):
    """``clip.tokenize`` padded to the model's own context length."""
    return clip.tokenize(texts, context_length=context_length(clip_model))


def num_tokens(text):
    """BPE tokens of ``text`` without the start/end markers."""
    return int((clip.tokenize(text)[0] != 0).sum()) - 2


# Default of ``TextEncoder.cut_after_eot`` for encoders built from here on (``text_cut``).
_CUT_AFTER_EOT = [True]


@contextlib.contextmanager
def text_cut(enabled):
    """Build text encoders with the EOT cut on or off (``MODEL.TEXT_CUT_AFTER_EOT``): the base
    trainer builds a method's model inside it, so features computed while building (zero-shot
    classifiers, the KD teacher) follow the option too."""
    previous = _CUT_AFTER_EOT[0]
    _CUT_AFTER_EOT[0] = bool(enabled)
    try:
        yield
    finally:
        _CUT_AFTER_EOT[0] = previous


def text_length(eot, deep_prompts=None, token_start=1):
    """Positions the text tower must run to read every prompt's EOT feature exactly.

    The tower is causal: the output at the EOT position depends on positions 0..EOT only, so the
    positions after the largest EOT index of the call are dropped. Key/value prompts are visible
    from every position and change nothing; tokens that replace positions
    ``[token_start, token_start + k)`` must fit, so the length is at least their end.
    """
    length = int(eot.max()) + 1
    for entry in deep_prompts or ():
        tokens = clip.model.as_block_prompt(entry).tokens
        if tokens is not None:
            length = max(length, token_start + tokens.shape[0])
    return length


class TextEncoder(nn.Module):
    """CLIP's text tower fed with prompt embeddings instead of token ids.

    ``prompts``: (n_prompts, n_tokens, width) token embeddings (learned context
    already spliced in); ``tokenized_prompts``: (n_prompts, n_tokens) ids, used
    only to find the end-of-text position (the largest id). ``deep_prompts`` is
    handed to the transformer unchanged: None, or one entry per block (see
    docs/ARCHITECTURE.md). Build it after ``cast_clip`` so ``dtype`` is right.

    ``cut_after_eot`` (default on, see ``text_cut``): run only the first ``text_length``
    positions, 1 + the largest EOT index among the prompts of the call, instead of all 77. The
    features are the same (causal attention; tested within 1e-5 in fp32) at a fraction of the
    cost: prompts such as "a photo of a dog." end near position 8.
    """

    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.dtype = clip_model.dtype
        self.cut_after_eot = _CUT_AFTER_EOT[0]

    def forward(self, prompts, tokenized_prompts, deep_prompts=None):
        eot = tokenized_prompts.argmax(dim=-1)
        if self.cut_after_eot:
            prompts = prompts[:, :text_length(eot, deep_prompts)]
        x = prompts + self.positional_embedding[:prompts.shape[1]].type(self.dtype)
        x = x.permute(1, 0, 2)  # (n_tokens, n_prompts, width)
        x = self.transformer(x, deep_prompts)
        x = x.permute(1, 0, 2)  # (n_prompts, n_tokens, width)
        x = self.ln_final(x).type(self.dtype)
        # (n_prompts, width) @ (width, embed_dim) -> (n_prompts, embed_dim)
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection


def initial_context(ctx_init, n_ctx, clip_model, n_cls=None):
    """CoOp's context initialisation -> (ctx_vectors, prompt_prefix, n_ctx).

    ``ctx_init`` words (e.g. "a photo of a"): their token embeddings, and n_ctx becomes their
    token count; else n_ctx vectors ~ N(0, 0.02^2) and the placeholder prefix "X X ... X".
    ``n_cls``: one context per class (CoOp's CSC): (n_cls, n_ctx, width), else (n_ctx, width).
    """
    dtype = clip_model.dtype
    width = clip_model.ln_final.weight.shape[0]
    if ctx_init:
        prompt_prefix = clean_classname(ctx_init)
        n_ctx = num_tokens(prompt_prefix)
        with torch.no_grad():
            embedding = clip_model.token_embedding(tokenize(prompt_prefix, clip_model)).type(dtype)
        ctx_vectors = embedding[0, 1:1 + n_ctx, :].clone()  # (n_ctx, width)
        if n_cls is not None:
            ctx_vectors = ctx_vectors.unsqueeze(0).repeat(n_cls, 1, 1)
    else:
        shape = (n_ctx, width) if n_cls is None else (n_cls, n_ctx, width)
        ctx_vectors = torch.empty(*shape, dtype=dtype)
        nn.init.normal_(ctx_vectors, std=0.02)
        prompt_prefix = " ".join(["X"] * n_ctx)
    print(f'Initial context: "{prompt_prefix}"')
    print(f"Number of context words (tokens): {n_ctx}")
    return ctx_vectors, prompt_prefix, n_ctx


def register_class_prompts(module, prompt_prefix, n_ctx, classnames, clip_model, persistent=True):
    """Buffers of the frozen text around a context: ``token_prefix`` (SOS), ``token_suffix``
    (class name, ".", EOT, padding) and ``tokenized_prompts`` (ids, for the EOT position) of
    "<prefix> <class>." -- the class-dependent buffers ``load_prompt_learners`` skips.
    ``persistent``: whether the first two are saved (CoOp's release saves them; newer methods don't)."""
    classnames = [clean_classname(name) for name in classnames]
    tokenized_prompts = tokenize([f"{prompt_prefix} {name}." for name in classnames], clip_model)
    with torch.no_grad():
        embedding = clip_model.token_embedding(tokenized_prompts).type(clip_model.dtype)
    module.register_buffer("token_prefix", embedding[:, :1, :], persistent=persistent)  # (n_cls, 1, width)
    module.register_buffer("token_suffix", embedding[:, 1 + n_ctx:, :], persistent=persistent)  # (n_cls, *, width)
    module.register_buffer("tokenized_prompts", tokenized_prompts, persistent=False)
    return classnames


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------
WHOLE_MODEL_PREFIX = "prompt_learner."


WHOLE_MODEL_PREFIXES = (WHOLE_MODEL_PREFIX, "image_encoder.", "text_encoder.")


def _is_whole_model(state_dict, module):
    """True for a checkpoint of the WHOLE model (the official DPL, MaPLe, IVLP, VPT and PromptSRC
    releases save ``CustomCLIP.state_dict()``: ``prompt_learner.*`` keys beside the frozen CLIP) when
    ``module`` itself has no such key."""
    return (any(k.startswith(WHOLE_MODEL_PREFIXES) for k in state_dict)
            and not any(k.startswith(WHOLE_MODEL_PREFIXES) for k in module.state_dict()))


def _release_key(key, mapper):
    """Our prompt-learner key for a whole-model key: the provider's ``from_release_key`` when it has one
    (releases that keep prompts inside CLIP's blocks), else the ``prompt_learner.`` prefix removed."""
    if mapper is not None:
        return mapper(key)
    return key[len(WHOLE_MODEL_PREFIX):] if key.startswith(WHOLE_MODEL_PREFIX) else None


def whole_model_prompts(state_dict, model, path=""):
    """The prompt learner's entries of a whole-model checkpoint, under our names.

    The frozen CLIP it also holds is compared with the CLIP loaded from MODEL.BACKBONE (same
    attribute names: ``image_encoder.``, ``text_encoder.``, ``logit_scale``): the release's
    predictions need the release's weights, so a difference is reported (the prompts still load).
    """
    mapper = getattr(model.prompt_learner, "from_release_key", None)
    prompts, rest = {}, []
    for key, value in state_dict.items():
        own = _release_key(key, mapper)
        if own is not None:
            prompts[own] = value
        elif not key.startswith(WHOLE_MODEL_PREFIX):
            rest.append(key)
    ours = model.state_dict()
    compared = [k for k in rest if k in ours and tuple(ours[k].shape) == tuple(state_dict[k].shape)]
    differ = [k for k in compared
              if not torch.allclose(ours[k].float().cpu(), state_dict[k].float().cpu(), rtol=1e-3, atol=1e-4)]
    print(f'"{path}" holds the whole model (a release checkpoint): loading its '
          f"{plural(len(prompts), 'prompt-learner tensor')}; {plural(len(compared), 'frozen CLIP tensor')} checked "
          "against MODEL.BACKBONE")
    if differ:
        warnings.warn(
            f'The frozen CLIP saved in "{path}" differs from the one loaded from MODEL.BACKBONE in '
            f"{len(differ)} of {len(compared)} tensors (e.g. {differ[:3]}): the predictions will not be the "
            "release's. Point MODEL.BACKBONE.NAME / PATH at the weights the checkpoint was trained with.",
            stacklevel=2,
        )
    return prompts


def load_prompt_learners(trainer, directory, epoch=None, drop_keys=CLASS_BUFFERS, keep=None, may_lack=None):
    """CoOp's ``load_model``: load every registered model from ``directory``.

    Reads ``<directory>/<name>/model-best.pth.tar`` (or ``model.pth.tar-<epoch>``),
    drops the class-dependent buffers and loads non-strictly so prompts trained on
    one set of classes apply to another. ``keep(key)``: load only the keys it accepts
    (a release checkpoint may hold more than the learnable tensors). A checkpoint of the whole
    model (``prompt_learner.*`` keys and the frozen CLIP, as the DPL and MaPLe releases write) loads
    its prompt learner (``whole_model_prompts``). ``may_lack(key)``: keys the checkpoint may miss
    (they keep their current values, with a warning).
    """
    if not directory:
        print("Note that load_model() is skipped as no pretrained model is given")
        return
    whole_model = None
    model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
    # Registered modules that declare ``from_release_key`` (e.g. DePT's head) may have no folder of
    # their own: a release's whole-model checkpoint of another module holds their tensors.
    from_whole_model = {}
    for name in trainer.get_model_names():
        model_path = osp.join(directory, name, model_file)
        mapper = getattr(trainer._models[name], "from_release_key", None)
        if not osp.exists(model_path) and mapper is not None and name != trainer.get_model_names()[0]:
            from_whole_model[name] = mapper
            continue
        if not osp.exists(model_path):
            from dassl.engine.trainer import checkpoints_present

            raise MissingFileError(
                f'No checkpoint at "{model_path}". Expected --model-dir to be a training '
                f"output folder containing {name}/{model_file}; check --model-dir and "
                f"--load-epoch; {checkpoints_present(osp.join(directory, name))}"
            )
        checkpoint = load_checkpoint(model_path)
        state_dict = checkpoint["state_dict"]
        if _is_whole_model(state_dict, trainer._models[name]):
            whole_model = (state_dict, model_path)
            state_dict = whole_model_prompts(state_dict, trainer.model, model_path)
        state_dict = {k: v for k, v in state_dict.items() if k not in drop_keys and (keep is None or keep(k))}
        print(f'Loading weights to {name} from "{model_path}" (epoch = {checkpoint["epoch"]})')
        hint = trainer.checkpoint_hint(directory) if hasattr(trainer, "checkpoint_hint") else (
            "Was it trained with the same trainer, backbone and prompt settings?")
        try:
            missing, unexpected = trainer._models[name].load_state_dict(state_dict, strict=False)
        except RuntimeError as error:  # tensor shapes differ
            raise CheckpointError(f'Checkpoint "{model_path}" does not fit {name}: {error}\n{hint}') from None
        missing = [k for k in missing if k not in drop_keys and (keep is None or keep(k))]
        lacking = [k for k in missing if may_lack is not None and may_lack(k)]
        if lacking:
            warnings.warn(f'"{model_path}" has no {lacking}: they keep their current values.', stacklevel=2)
            missing = [k for k in missing if k not in lacking]
        if missing or unexpected:
            raise CheckpointError(
                f'Checkpoint "{model_path}" does not fit {name}: missing {missing}, '
                f"unexpected {unexpected}. {hint}"
            )
    for name, mapper in from_whole_model.items():
        if whole_model is None:
            raise MissingFileError(f'No checkpoint at "{osp.join(directory, name, model_file)}" and no whole-model '
                                   f"(release) checkpoint beside it that holds {name}'s tensors; check --model-dir.")
        state_dict, model_path = whole_model
        own = {mapper(k): v for k, v in state_dict.items() if mapper(k) is not None}
        missing, _ = trainer._models[name].load_state_dict(own, strict=False)
        # a release stores no module extra state (e.g. DePT's class list): the module then applies its own rule
        missing = [k for k in missing if k not in drop_keys and not k.endswith("_extra_state")]
        if missing or not own:
            raise CheckpointError(f'The whole-model checkpoint "{model_path}" does not hold {name}: missing '
                                  f"{missing or list(trainer._models[name].state_dict())}.")
        print(f'Loading weights to {name} from "{model_path}" (its {plural(len(own), "tensor")} in the whole model)')
