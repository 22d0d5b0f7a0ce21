"""DePT (Decoupled Prompt Tuning, Zhang et al., CVPR 2024): the CAT head, a plug-in over any provider.

The method's own head (ITM: CLIP's cosine classifier, plus whatever terms it adds) is kept and
wrapped by ``DePTHead``, which adds a "Channel Adjusted Transfer" head on the RAW projected features
(before L2 normalisation):

    image' = scale_img * image + shift_img          text' = scale_text * text + shift_text   (embed,)
    CAT logits = linear(.)                           over the classes the head was trained on
    (TRAINER.LINEAR_PROBE.TYPE similarity, the release's ablation: logit_scale x cos(., text'), no classifier)

Training: loss = (1 - lambda) x CE(ITM) + lambda x CE(CAT over [text'[y]; image'], labels [y; y])
(one mean over the 2B rows), plus the wrapped head's other terms unchanged (KgCoOp's ``kg``,
PromptSRC's ``text``/``image``/``kl``). Nothing is detached: L_CAT trains the prompts through the
text branch, and through the image branch where the image features depend on prompts.

Test: on the classes the head knows, (1 - lambda) x ITM + lambda x CAT (raw logits, the release's
rule; ``TRAINER.DEPT.FUSION probs`` fuses softmax probabilities, the paper's formula); classes it
does not know get ITM logits only. The head's class list is saved with its weights, and rows are
picked by class name (base-to-new: the head knows the base classes). A release checkpoint has no
list: then the release's rule applies (the head is used when DATASET.SUBSAMPLE_CLASSES is "base",
or "all" on an ImageNet dataset), as it does always with ``TRAINER.DEPT.HEAD_AT_TEST official``.

Switched on over any trainer by ``TRAINER.DEPT.ENABLED True`` (the base trainer calls ``attach_dept``);
the release's trainer names ``ExtrasLinearProbe{CoOp,CoCoOp,KgCoOp,MaPLe}`` have it on.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from dassl.engine import TRAINER_REGISTRY
from dassl.utils import CheckpointError, ConfigError, plural

from trainers import cocoop, coop, kgcoop, maple
from trainers.model import PromptProvider

FUSIONS = ("logits", "probs")
HEAD_TYPES = ("linear", "similarity")
HEAD_AT_TEST = ("auto", "official")
RELEASE_NEW_LAYERS = ("head", "linear_probe", "film")  # names OPTIM.NEW_LAYERS may give the head

OPTIONS = {
    "TRAINER.DEPT": {
        "ENABLED": (False, "add DePT's CAT head to the trainer's own head (the ExtrasLinearProbe* trainers: on)"),
        "FUSION": ("logits", "test-time fusion of ITM and CAT: logits (the release) or probs (the paper)"),
        "HEAD_AT_TEST": ("auto", "auto: the head's rows chosen by class name (a release checkpoint: the release's "
                                 "rule); official: the release's rule on DATASET.SUBSAMPLE_CLASSES / NAME"),
    },
    "TRAINER.LINEAR_PROBE": {
        "TYPE": ("linear", "CAT classifier: linear (the release's default) or similarity (its ablation: "
                           "logit_scale x cosine of the transformed features with the transformed class text)"),
        "WEIGHT": (0.7, "lambda in [0, 1]: loss (1 - lambda) x CE(ITM) + lambda x CE(CAT), and the fusion weight"),
        "TEST_TIME_FUSION": (True, "fuse ITM and CAT on the known classes at test (False: CAT alone there)"),
    },
    "TRAINER.FILM": {
        "LINEAR_PROBE": (True, "per-channel scale and shift (cwT / FiLM) of each modality before the classifier"),
    },
    "OPTIM": {
        "LR_EXP": (6.5, "with DePT, the head's learning rate is OPTIM.LR x LR_EXP"),
    },
}

RAW = "raw_features"  # what the head asks PromptedCLIP for: the features before L2 normalisation


class ChannelTransform(nn.Module):
    """y = scale * x + shift per channel (the release's FiLM), fp32; identity when off."""

    def __init__(self, dim, enabled=True):
        super().__init__()
        self.enabled = enabled
        if enabled:
            self.scale = nn.Parameter(torch.ones(dim))
            self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):  # (..., dim) -> (..., dim) float32
        x = x.float()
        return self.scale * x + self.bias if self.enabled else x


def release_rule(cfg):
    """The release's test of whether its head applies (and exists) for the dataset being built."""
    subsample = cfg.DATASET.SUBSAMPLE_CLASSES
    return subsample == "base" or (subsample == "all" and "ImageNet" in cfg.DATASET.NAME)


class DePTHead(nn.Module):
    """The method's head (``inner``, the ITM branch) plus DePT's CAT head over ``classnames``."""

    def __init__(self, inner, classnames, dim, weight, fusion="logits", test_time_fusion=True, film=True,
                 head_at_test="auto", release_rule_applies=True, subsample="all", lr_mult=6.5, parent_rows=None,
                 num_parent_classes=None, head_type="linear"):
        super().__init__()
        self.inner = inner
        self.classnames = list(classnames)
        self.film_img = ChannelTransform(dim, film)
        self.film_text = ChannelTransform(dim, film)
        self.linear = nn.Linear(dim, len(self.classnames))  # PyTorch's default init, fp32
        self.head_type = head_type  # "similarity": the linear layer is kept (checkpoints) but not used
        self.weight_cat = float(weight)
        self.fusion = fusion
        self.test_time_fusion = bool(test_time_fusion)
        self.head_at_test = head_at_test
        self.release_rule_applies = release_rule_applies
        self.subsample = subsample
        self.lr_mult = float(lr_mult)  # the base trainer gives the "head" group OPTIM.LR x lr_mult
        # For a subset of a larger label space (ImageNet-A/-R of ImageNet): the parent row of each class,
        # what a release head over the parent's classes (it stores no class list) is sliced by.
        self.parent_rows = None if parent_rows is None else list(parent_rows)
        self.num_parent_classes = num_parent_classes
        self.wants = tuple(inner.wants) + (RAW,)
        self.wants_at_test = (RAW,)
        self.weights = dict(inner.weights)
        self.weights["ce"] = (1.0 - self.weight_cat) * inner.weights.get("ce", 1.0)
        self.weights["cat"] = self.weight_cat
        # Which of the dataset's classes the head knows (after a checkpoint, by name): not saved.
        self.register_buffer("known", torch.ones(len(self.classnames), dtype=torch.bool), persistent=False)
        if head_at_test == "official" and not release_rule_applies:
            self.known.zero_()

    # ---- logits ----
    def cat_logits(self, raw_image, raw_text=None, logit_scale=None, text_film=False):
        """(batch, embed) raw features -> (batch, n_cls) CAT logits (columns of unknown classes unused).

        ``raw_text`` (n_cls, embed) or (batch, n_cls, embed) and ``logit_scale`` serve the similarity
        type; ``text_film`` transforms the rows as text (the training rows of the true-class text)."""
        rows = self.film_text(raw_image) if text_film else self.film_img(raw_image)
        if self.head_type == "linear":
            return self.linear(rows)
        rows = F.normalize(rows, dim=-1)
        classes = F.normalize(self.film_text(raw_text), dim=-1)
        if classes.dim() == 3:  # a text classifier per image (CoCoOp)
            return logit_scale * torch.einsum("bd,bcd->bc", rows, classes)
        return logit_scale * rows @ classes.t()

    def logits(self, features):
        itm = self.inner.logits(features)
        if self.training or not self.known.any():
            return itm  # training: the ITM logits feed the loss terms; nothing known: ITM only
        raw_image, raw_text = features.extras[RAW]
        cat = self.cat_logits(raw_image, raw_text, features.logit_scale)
        known = self.known
        if self.fusion == "probs":
            p_itm = itm.softmax(dim=-1)
            p_cat = torch.zeros_like(itm)
            p_cat[:, known] = cat[:, known].softmax(dim=-1)  # over the known classes; 0 elsewhere
            if not self.test_time_fusion:
                return torch.where(known, p_cat, p_itm)
            return (1.0 - self.weight_cat) * p_itm + self.weight_cat * p_cat
        fused = (1.0 - self.weight_cat) * itm + self.weight_cat * cat if self.test_time_fusion else cat
        return torch.where(known, fused, itm)

    def losses(self, features, logits, label):
        terms = self.inner.losses(features, logits, label)
        raw_image, raw_text = features.extras[RAW]
        if raw_text.dim() == 3:  # a text classifier per image (CoCoOp): (batch, n_cls, embed)
            true_text = raw_text[torch.arange(len(label), device=label.device), label]
        else:
            true_text = raw_text[label]  # (batch, embed)
        if self.head_type == "linear":
            stacked = torch.cat([self.film_text(true_text), self.film_img(raw_image)])  # (2 batch, embed)
            cat = self.linear(stacked)
        else:  # the same rows, each scored against the transformed text of every class
            cat = torch.cat([self.cat_logits(true_text, raw_text, features.logit_scale, text_film=True),
                             self.cat_logits(raw_image, raw_text, features.logit_scale)])
        terms["cat"] = F.cross_entropy(cat, torch.cat([label, label]))
        return terms

    # ---- checkpoints: the class list travels with the weights ----
    def get_extra_state(self):
        return {"classnames": self.classnames}

    def set_extra_state(self, state):
        pass  # read in _load_from_state_dict, where the rows are chosen

    @staticmethod
    def from_release_key(key):
        """Our key for a key of the release's whole-model checkpoint (None: not the head's)."""
        for release, ours in (("film_lp_img.", "film_img."), ("film_lp_text.", "film_text."),
                              ("linear_probe_proj.", "linear.")):
            if key.startswith(release):
                return ours + key[len(release):]
        return None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        extra = state_dict.get(prefix + "_extra_state")
        saved = None if extra is None else list(extra["classnames"])
        weight_key, bias_key = prefix + "linear.weight", prefix + "linear.bias"
        if weight_key in state_dict:
            rows = self._rows(saved, len(state_dict[weight_key]))  # per current class: saved row or -1
            known = rows >= 0
            weight = self.linear.weight.detach().clone()
            bias = self.linear.bias.detach().clone()
            weight[known] = state_dict[weight_key].to(weight)[rows[known]]
            bias[known] = state_dict[bias_key].to(bias)[rows[known]]
            # in place: nn.Module.load_state_dict hands the children their keys from this (its own copy)
            state_dict[weight_key], state_dict[bias_key] = weight, bias
            self.known.copy_(known)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _rows(self, saved, n_saved):
        """Index into the saved rows for each of the dataset's classes, -1 where the head does not know it."""
        n = len(self.classnames)
        none = torch.full((n,), -1, dtype=torch.long)
        if saved is None or self.head_at_test == "official":
            if not self.release_rule_applies:
                print("DePT: the release's rule keeps the CAT head off for this dataset: ITM logits only")
                return none
            if saved is None:
                if n_saved == n:
                    return torch.arange(n)
                if self.parent_rows is not None and n_saved == self.num_parent_classes:
                    print(f"DePT: a head over the {n_saved} classes of the parent dataset and no class list: its rows "
                          f"for these {n} classes, in classnames.txt order (the release's rule for ImageNet-A/-R)")
                    return torch.tensor(self.parent_rows, dtype=torch.long)
                parent = ("" if self.num_parent_classes is None
                          else f" (or the parent dataset's {self.num_parent_classes}, in classnames.txt order)")
                raise CheckpointError(f"The DePT head checkpoint has {n_saved} classes and no class list; the "
                                      f"dataset has {n}. Expected the same classes in the same order{parent}.")
        index = {name: i for i, name in enumerate(saved)}
        rows = torch.tensor([index.get(name, -1) for name in self.classnames], dtype=torch.long)
        n_known = int((rows >= 0).sum())
        if n_known == 0 and self.subsample != "new":
            raise ConfigError(
                f"The DePT head checkpoint knows the classes {saved[:5]}{'...' if len(saved) > 5 else ''}, none of "
                f"the dataset's {self.classnames[:5]}{'...' if n > 5 else ''}. Expected a head trained on (some of) "
                "these classes: check --model-dir, DATASET.NAME and DATASET.SUBSAMPLE_CLASSES.")
        print(f"DePT: the CAT head knows {n_known} of the {plural(n, 'class', 'classes')} (rows chosen by name); ITM only for the rest")
        return rows


def provider_gives_features(provider):
    """Raw class text features need the provider's text to go through the text encoder."""
    return (provider is not None
            and type(provider).class_text_features is PromptProvider.class_text_features)


def attach_dept(trainer, cfg):
    """With TRAINER.DEPT.ENABLED, wrap the built model's head in ``DePTHead`` (the base trainer calls this)."""
    options = cfg.TRAINER.get("DEPT")
    if options is None or not options.ENABLED:
        return
    name = type(trainer).__name__
    model = trainer.model
    if not trainer.TRAINS or not provider_gives_features(model.prompt_learner):
        raise ConfigError(
            f"TRAINER.DEPT.ENABLED needs a prompt provider whose class text goes through the text encoder (DePT's "
            f"head reads the raw text features); {name} gives fixed or no class features. Expected a learned "
            "prompt trainer such as CoOp, CoCoOp, KgCoOp, MaPLe, PromptSRC or TrainerSubnet.")
    probe = cfg.TRAINER.LINEAR_PROBE
    weight = float(probe.WEIGHT)
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"TRAINER.LINEAR_PROBE.WEIGHT is {probe.WEIGHT}; expected a fusion weight in [0, 1] "
                          "(the release uses 0.7).")
    for key, value, allowed in (("LINEAR_PROBE.TYPE", probe.TYPE, HEAD_TYPES),
                                ("DEPT.FUSION", cfg.TRAINER.DEPT.FUSION, FUSIONS),
                                ("DEPT.HEAD_AT_TEST", cfg.TRAINER.DEPT.HEAD_AT_TEST, HEAD_AT_TEST)):
        if value not in allowed:
            raise ConfigError(f"TRAINER.{key} is {value!r}; expected one of {list(allowed)}.")
    new_layers = [cfg.OPTIM.NEW_LAYERS] if isinstance(cfg.OPTIM.NEW_LAYERS, str) else list(cfg.OPTIM.NEW_LAYERS)
    odd = [n for n in new_layers if n not in RELEASE_NEW_LAYERS]
    if odd:
        raise ConfigError(f"OPTIM.NEW_LAYERS names {odd}; with DePT expected names of its head among "
                          f"{list(RELEASE_NEW_LAYERS)} (its learning rate is OPTIM.LR x OPTIM.LR_EXP).")
    dim = model.text_encoder.text_projection.shape[1]
    model.head = DePTHead(
        model.head, trainer.dm.dataset.classnames, dim, weight, fusion=cfg.TRAINER.DEPT.FUSION,
        test_time_fusion=probe.TEST_TIME_FUSION, film=cfg.TRAINER.FILM.LINEAR_PROBE,
        head_at_test=cfg.TRAINER.DEPT.HEAD_AT_TEST, release_rule_applies=release_rule(cfg),
        subsample=cfg.DATASET.SUBSAMPLE_CLASSES, lr_mult=cfg.OPTIM.LR_EXP,
        parent_rows=getattr(trainer.dm.dataset, "parent_rows", None),
        num_parent_classes=getattr(trainer.dm.dataset, "num_parent_classes", None), head_type=probe.TYPE,
    )
    print(f"DePT: CAT head ({probe.TYPE}) over {plural(len(model.head.classnames), 'class', 'classes')} (embed {dim}), "
          f"lambda {weight}, "
          f"fusion on {cfg.TRAINER.DEPT.FUSION}, head LR = OPTIM.LR x {cfg.OPTIM.LR_EXP}")


class ExtrasLinearProbe:
    """The release's trainers: the base method with DePT on, whatever TRAINER.DEPT.ENABLED says."""

    def build_model(self):
        self.cfg.defrost()
        self.cfg.TRAINER.DEPT.ENABLED = True
        self.cfg.freeze()
        super().build_model()


@TRAINER_REGISTRY.register()
class ExtrasLinearProbeCoOp(ExtrasLinearProbe, coop.CoOp):
    MODEL_NAME = "PromptLearner"  # the release's folder (it holds the whole model there)


@TRAINER_REGISTRY.register()
class ExtrasLinearProbeCoCoOp(ExtrasLinearProbe, cocoop.CoCoOp):
    MODEL_NAME = "PromptLearner"


@TRAINER_REGISTRY.register()
class ExtrasLinearProbeKgCoOp(ExtrasLinearProbe, kgcoop.KgCoOp):
    MODEL_NAME = "PromptLearner"


@TRAINER_REGISTRY.register()
class ExtrasLinearProbeMaPLe(ExtrasLinearProbe, maple.MaPLe):
    pass  # MaPLe's folder, "MultiModalPromptLearner", is the release's too
