"""DPL training stage: the searched (or hand-written) deep-prompt configuration, trained.

The prompt length of every block of both encoders comes from the two alpha files of the search
(row-wise argmax), from a ``searched_config.json``, or from a hand-written JSON of the same form
(trainers/prompt_config.py). Blocks with 0 tokens are plain CLIP blocks. CLIP stays frozen; the
prompts start from N(0, INIT_STD^2). The configuration used is written to the output folder as
``prompt_config.json``: ``--eval-only --model-dir <that folder>`` reads it without any option. Optional knowledge distillation from zero-shot CLIP
(``KD_WEIGHT`` > 0): the teacher reuses the frozen encoders, run without prompts.
"""

import os

from dassl.engine import TRAINER_REGISTRY
from dassl.utils import ConfigError

from datasets.templates import IMAGENET_TEMPLATES, template_for
from trainers import prompt_config
from trainers.base import PromptTrainer, check_choice
from trainers.common import is_main_process
from trainers.deep_prompts import MODEL_NAME as RELEASE_MODEL_NAME, branch_shapes, fixed_prompts, subnet_prompts
from trainers.heads import DistillationHead
from trainers.model import PromptedCLIP, PromptProvider
from trainers.zeroshot_text import template_text_input, zeroshot_text_features

SUBNET_PRECISIONS = ("fp32", "amp", "bf16")
CTX_INIT_MODES = ("default", "custom", "ensemble")

OPTIONS = {
    "TRAINER.TRAINERSUBNET": {
        "IMG_ALPHA_PATH": ("", "image alpha file of the search (alpha_e<E>_img.npy): prompt lengths = row argmax"),
        "TXT_ALPHA_PATH": ("", "text alpha file of the search (alpha_e<E>_txt.npy)"),
        "PROMPT_CONFIG": ("", "a searched_config.json (or a hand-written one); wins over the alpha files"),
        "CTX_INIT": ("ensemble", "text input: default (a photo of a {}.), custom (the dataset's template) or "
                                 "ensemble (token embeddings averaged over 60 templates, the release's)"),
        "PREC": ("fp32", "precision: fp32, amp or bf16"),
        "KD_WEIGHT": (0.0, "weight of the distillation term from zero-shot CLIP (0: no teacher)"),
        "KD_TEMP": (1.0, "distillation temperature"),
        "INIT_STD": (0.02, "prompts start ~ N(0, std^2)"),
        "TEXT_CHUNK_SIZE": (0, "> 0: classes per text chunk, with activation checkpointing (memory)"),
    },
}


# Input files, recorded by their SHA256 in run_settings.json (train.py).
INPUT_FILE_KEYS = ("TRAINER.TRAINERSUBNET.IMG_ALPHA_PATH", "TRAINER.TRAINERSUBNET.TXT_ALPHA_PATH",
                   "TRAINER.TRAINERSUBNET.PROMPT_CONFIG")
# The configuration a run trained, in its output folder (read back by --eval-only --model-dir).
RUN_PROMPT_CONFIG = "prompt_config.json"


def searched_prompt_lengths(cfg, clip_model):
    """{"image": [...], "text": [...]} from PROMPT_CONFIG, or else the two alpha files."""
    opts = cfg.TRAINER.TRAINERSUBNET
    shapes = branch_shapes(clip_model)
    blocks = {branch: shapes[branch][0] for branch in prompt_config.BRANCHES}
    if opts.PROMPT_CONFIG:
        return prompt_config.read_prompt_config(opts.PROMPT_CONFIG, blocks)
    if opts.IMG_ALPHA_PATH or opts.TXT_ALPHA_PATH:
        return prompt_config.prompt_lengths_from_alphas(opts.IMG_ALPHA_PATH, opts.TXT_ALPHA_PATH, blocks)
    raise ConfigError(
        "TrainerSubnet needs a prompt configuration: set TRAINER.TRAINERSUBNET.PROMPT_CONFIG to a "
        "searched_config.json (or a hand-written one), or TRAINER.TRAINERSUBNET.IMG_ALPHA_PATH and "
        "TXT_ALPHA_PATH to the search's alpha_e<E>_img.npy / alpha_e<E>_txt.npy."
    )


def text_input(cfg, classnames, clip_model):
    """Token embeddings (n_cls, n_tokens, width) and the token ids used to find each EOT position.

    ``default``: "a photo of a {class}."; ``custom``: the dataset's own template; ``ensemble``
    (the release's default): the embeddings of all IMAGENET_TEMPLATES averaged position by
    position, read out at the end-of-text position of the LAST template, as the release does
    (trainers/zeroshot_text.py, recipe "embeddings").
    """
    mode = cfg.TRAINER.TRAINERSUBNET.CTX_INIT
    if mode == "default":
        templates = ["a photo of a {}."]
    elif mode == "custom":
        templates = [template_for(cfg)]
    else:
        templates = IMAGENET_TEMPLATES
    return template_text_input(clip_model, classnames, templates)


class PromptLearner(PromptProvider):
    """Subnet prompts, named as the release's: ``ctx_img_lst.<block>``, ``ctx_txt_lst.<block>``."""

    def __init__(self, cfg, classnames, clip_model, prompt_lengths):
        super().__init__()
        shapes = branch_shapes(clip_model)
        std = cfg.TRAINER.TRAINERSUBNET.INIT_STD
        self.prompt_lengths = prompt_lengths
        self.ctx_img_lst = subnet_prompts(prompt_lengths["image"], shapes["image"][1], std)
        self.ctx_txt_lst = subnet_prompts(prompt_lengths["text"], shapes["text"][1], std)
        embeddings, tokenized = text_input(cfg, classnames, clip_model)
        # Derivable from the class names: not saved in checkpoints.
        self.register_buffer("text_embeddings", embeddings, persistent=False)
        self.register_buffer("tokenized_prompts", tokenized, persistent=False)

    def text_input(self, image_features=None):
        return self.text_embeddings, self.tokenized_prompts

    def image_prompts(self, dtype):
        return fixed_prompts(self.ctx_img_lst, dtype)

    def text_prompts(self, dtype):
        return fixed_prompts(self.ctx_txt_lst, dtype)


class CustomCLIP(PromptedCLIP):
    """Frozen CLIP with the subnet's fixed-length deep prompts; ``forward(image)`` -> logits.

    With ``KD_WEIGHT`` > 0 the head adds KD from zero-shot CLIP: the same frozen encoders without
    prompts, class features averaged over all templates (computed once: no second CLIP).
    """

    def __init__(self, cfg, classnames, clip_model, prompt_lengths):
        opts = cfg.TRAINER.TRAINERSUBNET
        learner = PromptLearner(cfg, classnames, clip_model, prompt_lengths)
        super().__init__(clip_model, learner, text_chunk_size=opts.TEXT_CHUNK_SIZE)
        if float(opts.KD_WEIGHT) > 0:
            teacher = zeroshot_text_features(self, clip_model, classnames, IMAGENET_TEMPLATES, recipe="features")
            self.head = DistillationHead(teacher, opts.KD_WEIGHT, opts.KD_TEMP)


@TRAINER_REGISTRY.register()
class TrainerSubnet(PromptTrainer):
    """DPL's training stage: trains the prompts of a fixed per-block configuration."""

    CONFIG_SECTION = "TRAINERSUBNET"
    MODEL_NAME = RELEASE_MODEL_NAME  # the release's checkpoint folder name
    PRECISIONS = SUBNET_PRECISIONS
    SHAPE_KEYS = ("PROMPT_CONFIG", "IMG_ALPHA_PATH", "TXT_ALPHA_PATH")  # the prompt length of every block

    @classmethod
    def model_dir_overrides(cls, cfg, model_dir):
        """--eval-only --model-dir of a subnet run without a prompt configuration of its own: the one that
        run recorded (its prompt_config.json)."""
        opts = cfg.TRAINER.TRAINERSUBNET
        recorded = os.path.join(model_dir, RUN_PROMPT_CONFIG)
        if opts.PROMPT_CONFIG or opts.IMG_ALPHA_PATH or opts.TXT_ALPHA_PATH or not os.path.isfile(recorded):
            return []
        return ["TRAINER.TRAINERSUBNET.PROMPT_CONFIG", recorded]

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        opts = cfg.TRAINER.TRAINERSUBNET
        check_choice("TRAINER.TRAINERSUBNET.CTX_INIT", opts.CTX_INIT, CTX_INIT_MODES)
        if opts.KD_WEIGHT < 0 or opts.KD_TEMP <= 0:
            raise ConfigError(
                f"TRAINER.TRAINERSUBNET.KD_WEIGHT must be >= 0 and KD_TEMP > 0 (got KD_WEIGHT {opts.KD_WEIGHT}, "
                f"KD_TEMP {opts.KD_TEMP})."
            )

    def build_custom_clip(self, cfg, classnames, clip_model):
        lengths = searched_prompt_lengths(cfg, clip_model)
        for line in prompt_config.format_lengths({b: {"prompt_lengths": lengths[b]} for b in lengths}):
            print(f"Prompt configuration, {line}")
        if not any(lengths["image"]) and not any(lengths["text"]):
            raise ConfigError("The prompt configuration has 0 tokens in every block: nothing to train.")
        if is_main_process():
            config = {"format": prompt_config.CONFIG_FORMAT, **{b: {"prompt_lengths": lengths[b]} for b in lengths}}
            prompt_config.write_json(os.path.join(cfg.OUTPUT_DIR, RUN_PROMPT_CONFIG), config)
        return CustomCLIP(cfg, classnames, clip_model, lengths)
