"""PromptSRC: prompting with self-regularising constraints (Khattak et al., ICCV 2023).

The prompts are IVLP's (trainers/ivlp.py: ``VLPromptLearner``, 4 + 4 tokens, depth 9 / 9 in the
release's configs). Training adds three terms that keep the prompted model near the frozen CLIP it
starts from (``SelfRegularizingHead``), and the prompts of the epochs are averaged with Gaussian
weights (``PromptAggregation``):

    loss = CE(logits, y)
         + TEXT_LOSS_WEIGHT  x mean |t - g|           t: prompted class text features, normalised
         + IMAGE_LOSS_WEIGHT x mean |v - v_zs|        g: the 60 templates' mean frozen features, normalised
         + KL(p_zs || p) summed / (batch x n_cls)    v, v_zs: prompted / frozen image features, normalised

with logits = scale v t^T and zs_logits = scale v_zs g^T. ``g`` is computed once, for the current
classes, with the same frozen text tower without prompts (the release keeps two more CLIP copies
for it and for ``v_zs``); ``v_zs`` is the "zeroshot_image" extra (the same augmented batch, no
gradient). The test is the prompted model alone.

Gaussian prompt aggregation (GPA): g_e proportional to N(e; GPA_MEAN, GPA_STD), e = 1..MAX_EPOCH,
normalised. After every epoch the learnable tensors times g_e are added to an fp32 running sum;
after the last epoch the sum replaces the prompts, so the final test and the last checkpoint are
the aggregated model. The sum and the number of epochs in it are saved in every checkpoint: a
resumed run ends exactly like an uninterrupted one. (The release sums the whole fp16 state dict,
frozen CLIP included, and keeps the sum on the trainer only: docs/baselines.md, PromptSRC.)

Checkpoints: ``VLPromptLearner/model.pth.tar-<epoch>`` (the release's folder) with IVLP's keys
(``ctx``, ``vpt``, ``text_deep.<block>``, ``vision_deep.<block>``) and a ``gpa`` entry. A checkpoint
of the release (the whole model, ``prompt_learner.ZS_image_encoder.*`` included) loads its prompts.
"""
import math

import torch
import torch.nn.functional as F
from tqdm import tqdm

from dassl.engine import TRAINER_REGISTRY
from dassl.utils import CheckpointError, ConfigError, is_main_process, plural
from datasets.templates import IMAGENET_TEMPLATES

from trainers.base import PromptTrainer
from trainers.common import clean_classname, tokenize
from trainers.heads import ClassificationHead, distillation_loss
from trainers.ivlp import CustomCLIP, build_vl_prompt_learner

# Integers where the release's are: yacs keeps a default's type, and the release's YAMLs write 25, 15, 1.
OPTIONS = {
    "TRAINER.PROMPTSRC": {
        "N_CTX_VISION": (4, "vision prompt tokens per prompted block"),
        "N_CTX_TEXT": (4, "text prompt tokens (layer 0: the first N_CTX_TEXT words of CTX_INIT are learned)"),
        "CTX_INIT": ("a photo of a", "words before the class name; used when N_CTX_TEXT <= 4 (the release's rule)"),
        "PREC": ("fp16", "precision: fp16, fp32, amp or bf16"),
        "PROMPT_DEPTH_VISION": (9, "vision blocks that receive prompts, the input counting as the first (0: none)"),
        "PROMPT_DEPTH_TEXT": (9, "text blocks that receive prompts, the input counting as the first (>= 1)"),
        "TEXT_LOSS_WEIGHT": (25, "weight of the L1 term between prompted and template-mean frozen text features"),
        "IMAGE_LOSS_WEIGHT": (10, "weight of the L1 term between prompted and frozen image features"),
        "GPA_MEAN": (15, "Gaussian prompt aggregation: mean epoch of the weights (epochs count from 1)"),
        "GPA_STD": (1, "Gaussian prompt aggregation: standard deviation of the weights, in epochs (> 0)"),
        "ROUND_PROMPTS_FP16": (True, "round inserted prompts to fp16 as the release does under every PREC"),
    },
}

SECTION = "TRAINER.PROMPTSRC"


# ---------------------------------------------------------------------------
# Gaussian prompt aggregation
# ---------------------------------------------------------------------------
def gaussian_weights(mean, std, epochs):
    """[g_1, ..., g_epochs], g_e proportional to N(e; mean, std), summing to 1 (float64).

    Raises ConfigError when ``std`` is not positive or every weight underflows to 0 (a window far
    outside 1..epochs).
    """
    if not std > 0:
        raise ConfigError(f"{SECTION}.GPA_STD is {std}; expected a positive number of epochs (the release uses 1).")
    density = [math.exp(-0.5 * ((epoch - mean) / std) ** 2) for epoch in range(1, epochs + 1)]
    total = sum(density)
    if total == 0:
        raise ConfigError(
            f"{SECTION}.GPA_MEAN {mean} and {SECTION}.GPA_STD {std} give every epoch 1..{epochs} (OPTIM.MAX_EPOCH) "
            f"a Gaussian weight of 0, so there is nothing to aggregate. Put GPA_MEAN within a few GPA_STD of "
            f"1..{epochs} (e.g. GPA_MEAN {epochs} GPA_STD 1)."
        )
    return [d / total for d in density]


class PromptAggregation:
    """The running sum of GPA: ``add`` after every epoch, ``load_into`` after the last.

    Only the learnable tensors are summed, in float32, on their own device.
    """

    def __init__(self, weights, module):
        self.weights = list(weights)
        self.epochs = 0  # epochs added to the sum
        self.sum = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in module.named_parameters()}

    @torch.no_grad()
    def add(self, module):
        weight = self.weights[self.epochs]
        for name, p in module.named_parameters():
            self.sum[name].add_(p.detach().float(), alpha=weight)
        self.epochs += 1

    @torch.no_grad()
    def load_into(self, module):
        for name, p in module.named_parameters():
            p.copy_(self.sum[name])

    def state_dict(self):
        return {"weights": list(self.weights), "epochs": self.epochs,
                "sum": {name: total.detach().clone() for name, total in self.sum.items()}}

    def load_state_dict(self, state, path=""):
        if list(state["weights"]) != self.weights:
            raise CheckpointError(
                f'"{path}" was written with other GPA weights (GPA_MEAN, GPA_STD or OPTIM.MAX_EPOCH differ): '
                "resume with the settings that wrote it, or delete the folder to train from scratch."
            )
        if sorted(state["sum"]) != sorted(self.sum):
            raise CheckpointError(f'"{path}" holds a GPA sum of {sorted(state["sum"])}, but the prompt learner has '
                                  f"{sorted(self.sum)}. Resume with the config that wrote it.")
        for name, total in state["sum"].items():
            self.sum[name].copy_(total)
        self.epochs = int(state["epochs"])

    def window(self, threshold=1e-3):
        """{epoch: weight} of the epochs that matter (for the log)."""
        return {e: round(w, 3) for e, w in enumerate(self.weights, start=1) if w >= threshold}


# ---------------------------------------------------------------------------
# Self-regularisation
# ---------------------------------------------------------------------------
def template_text_features(model, clip_model, classnames, templates, device):
    """(n_cls, embed) float32: the frozen text tower's raw (unnormalised) features, averaged over
    ``templates`` (each "...{}..." filled with every class name). No prompts, no gradient."""
    names = [clean_classname(name) for name in classnames]
    total = 0.0
    with torch.no_grad():
        for template in tqdm(templates, desc="Template text features", unit="template", delay=1,
                             disable=not is_main_process()):
            token_ids = tokenize([template.format(name) for name in names], clip_model)
            embeddings = clip_model.token_embedding(token_ids).to(device=device, dtype=model.dtype)
            total = total + model.text_encoder(embeddings, token_ids.to(device)).float()
    return total / len(templates)


def normalise(x):
    return x / x.norm(dim=-1, keepdim=True)


class SelfRegularizingHead(ClassificationHead):
    """CE + the three terms of PromptSRC (module docstring), each logged: ``loss_ce``, ``loss_text``,
    ``loss_image``, ``loss_kl``. Logits (test time too) are CLIP's cosine classifier."""

    wants = ("zeroshot_image",)

    def __init__(self, template_features, text_weight, image_weight):
        super().__init__()
        # The raw template mean of the current classes (normalised in the loss): not saved.
        self.register_buffer("template_features", template_features, persistent=False)  # (n_cls, embed)
        self.weights = {"ce": 1.0, "text": float(text_weight), "image": float(image_weight), "kl": 1.0}

    def losses(self, features, logits, label):
        template = normalise(self.template_features.float())
        zeroshot_image = features.extras["zeroshot_image"].float()
        zeroshot_logits = features.logit_scale.float() * zeroshot_image @ template.t()
        return {
            "ce": F.cross_entropy(logits, label),
            "text": F.l1_loss(features.text.float(), template),
            "image": F.l1_loss(features.image.float(), zeroshot_image),
            "kl": distillation_loss(logits, zeroshot_logits, temperature=1.0),  # / (batch x n_cls)
        }


# ---------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------
@TRAINER_REGISTRY.register()
class PromptSRC(PromptTrainer):
    """IVLP prompts + self-regularising losses + Gaussian prompt aggregation (module docstring)."""

    CONFIG_SECTION = "PROMPTSRC"
    MODEL_NAME = "VLPromptLearner"  # the release's checkpoint folder

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        opts = cfg.TRAINER.PROMPTSRC
        # before anything is built: a window without weight stops here, with the keys named
        self.gpa_weights = gaussian_weights(opts.GPA_MEAN, opts.GPA_STD, int(cfg.OPTIM.MAX_EPOCH))

    def build_custom_clip(self, cfg, classnames, clip_model):
        opts = cfg.TRAINER.PROMPTSRC
        learner = build_vl_prompt_learner(opts, SECTION, clip_model, classnames, type(self).__name__)
        model = CustomCLIP(clip_model, learner).to(self.device)  # the templates' features on the device
        features = template_text_features(model, clip_model, classnames, IMAGENET_TEMPLATES, self.device)
        model.head = SelfRegularizingHead(features, opts.TEXT_LOSS_WEIGHT, opts.IMAGE_LOSS_WEIGHT)
        return model

    def build_model(self):
        super().build_model()
        self.gpa = PromptAggregation(self.gpa_weights, self.model.prompt_learner)
        print(f"Gaussian prompt aggregation over {plural(len(self.gpa_weights), 'epoch')}, weights (epoch: weight >= 0.001): "
              f"{self.gpa.window()}")

    # ------------------------------------------------------------- GPA
    def after_epoch(self):
        """Add this epoch's prompts to the sum (before the checkpoint, which saves it); after the last
        epoch, the sum becomes the prompts that are tested and saved."""
        if self.gpa.epochs != self.epoch:
            raise RuntimeError(f"GPA holds {self.gpa.epochs} epochs at the end of epoch {self.epoch + 1}: the running "
                               "sum and the training loop are out of step.")
        self.gpa.add(self.model.prompt_learner)
        if self.epoch + 1 == self.max_epoch:
            self.gpa.load_into(self.model.prompt_learner)
            print(f"Prompts: the Gaussian-weighted average of epochs {list(self.gpa.window())}")
        super().after_epoch()

    # ------------------------------------------------------------- checkpoints
    def checkpoint_extras(self, name):
        """GPA's running sum and epoch count beside the prompts (and the base trainer's amp scaler)."""
        extras = super().checkpoint_extras(name)
        if name == self.MODEL_NAME:
            extras["gpa"] = self.gpa.state_dict()
        return extras

    def restore_checkpoint_extras(self, name, checkpoint, path):
        super().restore_checkpoint_extras(name, checkpoint, path)
        if name != self.MODEL_NAME:
            return
        if "gpa" not in checkpoint:
            raise CheckpointError(f'"{path}" holds no GPA state (not written by this PromptSRC trainer): delete '
                                  "the folder to train from scratch.")
        self.gpa.load_state_dict(checkpoint["gpa"], path)
        if self.gpa.epochs != checkpoint["epoch"]:
            raise CheckpointError(f'"{path}" ends epoch {checkpoint["epoch"]} but its GPA sum holds {self.gpa.epochs} '
                                  "epochs: delete the folder to train from scratch.")
        print(f"Loaded the GPA sum of epochs 1..{self.gpa.epochs}")
