"""KgCoOp: Knowledge-guided Context Optimization (Yao et al., CVPR 2023), https://arxiv.org/abs/2303.13283.

CoOp (a context shared by the classes, class token at the end) plus a term that keeps the learned
class text features close to CLIP's hand-written ones:

    loss = CE(logit_scale x cos(image, t_i)) + W x (1 - mean_i cos(t_i, t_i^clip))

t_i: the prompted feature of class i; t_i^clip: the frozen feature of the dataset's ONE template
(``KGCOOP_TEMPLATES``) for class i, computed once at construction for the current classes by the same
frozen text encoder. The term is the head's "kg" (logged as ``loss_kg``); it is not applied at test time.

Config: the release reads everything from ``TRAINER.COOP`` (N_CTX, CTX_INIT, CSC, CLASS_TOKEN_POSITION,
PREC and W; ALPHA exists there too), so KgCoOp does as well and the release's YAMLs and scripts run
unchanged; W and ALPHA are declared here. ``TRAINER.KGCOOP`` holds what the release has no key for
(LEGACY_COS2). The release writes CTX_INIT as a boolean: ``VALUE_ALIASES`` tells train.py to merge True
as "a photo of a" (the words the release hard-codes for any true value) and False as "" (random init).
docs/baselines.md lists the release's defects and what this file does about each.
"""
import math

import torch.nn.functional as F
from torch.optim.lr_scheduler import LRScheduler

from dassl.engine import TRAINER_REGISTRY
from dassl.optim.lr_scheduler import ConstantWarmupScheduler, LinearWarmupScheduler
from dassl.utils import ConfigError

from datasets.templates import ZEROSHOT_TEMPLATES, template_for
from trainers import coop
from trainers.common import autocast, clean_classname, context_length, load_prompt_learners, num_tokens
from trainers.heads import ClassificationHead
from trainers.model import PromptedCLIP
from trainers.zeroshot_text import zeroshot_text_features

RELEASE_CTX_INIT = "a photo of a"

OPTIONS = {
    "TRAINER.COOP": {
        "W": (1.0, "KgCoOp: weight W of the term 1 - mean cos(learned, hand-written class text features) "
                   "(the release's scripts use 8.0, DePT's re-run 2.0)"),
        "ALPHA": (1.0, "read by no trainer; declared because the release's config tree has it (DePT's KgCoOp "
                       "YAML sets it)"),
    },
    "TRAINER.KGCOOP": {
        "LEGACY_COS2": (False, "KgCoOp: the paper-era LR schedule, the cosine factor squared after the warm-up "
                               "(the release then stepped two cosine schedulers together); OPTIM.LR_SCHEDULER "
                               "must be cosine"),
    },
}

# Values the release's files give a key in another type than ours; train.py maps them while merging.
VALUE_ALIASES = {"TRAINER.COOP.CTX_INIT": {True: RELEASE_CTX_INIT, False: ""}}

# The release's one template per dataset: CoOp's zero-shot table but for DTD. Datasets without an
# entry get "a photo of a {}." (template_for), ImageFolder datasets their own.
KGCOOP_TEMPLATES = {**ZEROSHOT_TEMPLATES, "DescribableTextures": "a photo of a {}, a type of texture."}

# Built by the release (prompt learner: bias_vectors, meta_net; CustomCLIP: adapter) and saved in its
# checkpoints, but used by none of its forward passes: not built here, ignored when loading.
RELEASE_DEAD_WEIGHT = ("bias_vectors", "meta_net.", "adapter.")


def check_text_room(opts, classnames, clip_model):
    """A readable error when "[SOS] ctx <longest class name> . [EOT]" does not fit the text positions."""
    words = clean_classname(opts.CTX_INIT) if opts.CTX_INIT else ""
    n_ctx = num_tokens(words) if words else int(opts.N_CTX)
    lengths = {name: num_tokens(name) for name in map(clean_classname, classnames)}
    longest = max(lengths, key=lengths.get)
    positions = context_length(clip_model)
    room = positions - 3 - lengths[longest]  # SOS, ".", EOT and the name
    if n_ctx <= room:
        return
    if words:
        what, fix = f'TRAINER.COOP.CTX_INIT is "{words}" ({n_ctx} tokens)', "Use fewer words"
    else:
        what, fix = f"TRAINER.COOP.N_CTX is {n_ctx}", f"Set TRAINER.COOP.N_CTX to at most {room}"
    raise ConfigError(
        f"{what}, but the longest class name ({longest!r}, {lengths[longest]} tokens) leaves room for at most "
        f"{room} context tokens in the {positions}-token text input (SOS, the name, \".\" and EOT take the rest). "
        f"{fix}."
    )


class PromptLearner(coop.PromptLearner):
    """CoOp's context vectors (the release's: nothing else); checks first that the prompts fit."""

    def __init__(self, cfg, classnames, clip_model):
        check_text_room(cfg.TRAINER.COOP, classnames, clip_model)
        super().__init__(cfg, classnames, clip_model)


class KnowledgeGuidedHead(ClassificationHead):
    """Cross-entropy + W x "kg": 1 - mean over the classes of cos(learned, hand-written class text)."""

    def __init__(self, template_text_features, weight):
        super().__init__()
        # (n_cls, embed), normalised; derived from the class names: not saved in checkpoints
        self.register_buffer("template_text_features", template_text_features, persistent=False)
        self.weights = {"ce": 1.0, "kg": float(weight)}

    def losses(self, features, logits, label):
        terms = super().losses(features, logits, label)
        cos = F.cosine_similarity(features.text.float(), self.template_text_features.float(), dim=-1)
        terms["kg"] = 1.0 - cos.mean()
        return terms


class CustomCLIP(PromptedCLIP):
    def __init__(self, cfg, classnames, clip_model, prec="fp32", device="cpu"):
        super().__init__(clip_model, PromptLearner(cfg, classnames, clip_model))
        template = template_for(cfg, KGCOOP_TEMPLATES)
        print(f'Hand-written template of the KgCoOp term: "{template}"')
        clip_model.to(device)  # the frozen encoder of the prompts (no second CLIP), once
        with autocast(prec, device):
            anchor = zeroshot_text_features(self, clip_model, classnames, [template])
        self.head = KnowledgeGuidedHead(anchor, cfg.TRAINER.COOP.W)


class CosineSquaredLR(LRScheduler):
    """lr = base_lr x [(1 + cos(pi t / T_max)) / 2]^2: CosineAnnealingLR's factor (eta_min 0), squared.

    KgCoOp's paper-era schedule: until 2023-08-15 its trainer stepped a second cosine scheduler on the
    same optimiser every epoch, and in the maintainer's runs the factor was squared (KgCoOp #2 prints
    2.000000e-03, 1.999013e-03, 1.996055e-03, ... after the warm-up epoch).
    """

    def __init__(self, optimizer, T_max, last_epoch=-1):
        self.T_max = T_max
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        factor = (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0
        return [base_lr * factor ** 2 for base_lr in self.base_lrs]


WARMUPS = {"constant": (ConstantWarmupScheduler, "WARMUP_CONS_LR"), "linear": (LinearWarmupScheduler, "WARMUP_MIN_LR")}


def build_legacy_cos2_scheduler(optimizer, optim_cfg):
    """``build_lr_scheduler``'s cosine with its factor squared, behind the same warm-up."""
    scheduler = CosineSquaredLR(optimizer, T_max=float(optim_cfg.MAX_EPOCH))
    if optim_cfg.WARMUP_EPOCH <= 0:
        return scheduler
    if not optim_cfg.WARMUP_RECOUNT:
        scheduler.last_epoch = optim_cfg.WARMUP_EPOCH
    warmup, lr_key = WARMUPS[optim_cfg.WARMUP_TYPE]  # already checked by build_lr_scheduler
    return warmup(optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg[lr_key])


@TRAINER_REGISTRY.register()
class KgCoOp(coop.CoOp):
    """Knowledge-guided Context Optimization: CoOp's provider + ``KnowledgeGuidedHead``."""

    CONFIG_SECTION = "COOP"  # the release's section

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        if cfg.TRAINER.KGCOOP.LEGACY_COS2 and cfg.OPTIM.LR_SCHEDULER != "cosine":
            raise ConfigError(
                f"TRAINER.KGCOOP.LEGACY_COS2 squares the cosine schedule, but OPTIM.LR_SCHEDULER is "
                f"{cfg.OPTIM.LR_SCHEDULER!r}. Set OPTIM.LR_SCHEDULER cosine or TRAINER.KGCOOP.LEGACY_COS2 False."
            )

    def build_custom_clip(self, cfg, classnames, clip_model):
        return CustomCLIP(cfg, classnames, clip_model, self.prec, self.device)

    def build_model(self):
        super().build_model()
        if self.cfg.TRAINER.KGCOOP.LEGACY_COS2:
            # replaces the schedule the base trainer registered, on the same optimiser
            self.sched = build_legacy_cos2_scheduler(self.optim, self.cfg.OPTIM)
            self._scheds[self.MODEL_NAME] = self.sched
            print("LR schedule: the paper-era cosine squared (TRAINER.KGCOOP.LEGACY_COS2)")

    def load_model(self, directory, epoch=None):
        ignored = []

        def keep(key):
            if key.startswith(RELEASE_DEAD_WEIGHT):
                ignored.append(key)
                return False
            return True

        load_prompt_learners(self, directory, epoch, keep=keep)
        if ignored:
            print(f"Ignored the release's unused tensors {sorted(set(ignored))}: its prompt learner builds them "
                  "but its forward never uses them")
