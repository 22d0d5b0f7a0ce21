"""DPL training stage: the searched (or hand-written) deep-prompt configuration, trained.

The prompt length of every block of both encoders comes from the two alpha files of the search
(row-wise argmax), from a ``searched_config.json``, or from a hand-written JSON of the same form
(trainers/prompt_config.py). Blocks with 0 tokens are plain CLIP blocks. CLIP stays frozen; the
prompts start from N(0, INIT_STD^2). Optional knowledge distillation from zero-shot CLIP
(``KD_WEIGHT`` > 0): the teacher reuses the frozen encoders, run without prompts.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from dassl.engine import TRAINER_REGISTRY, TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer

from datasets.templates import IMAGENET_TEMPLATES, template_for
from trainers import prompt_config
from trainers.common import (
    autocast,
    average_gradients,
    clean_classname,
    load_prompt_learners,
    make_grad_scaler,
    prepare_clip,
    tokenize,
)
from trainers.deep_prompts import PromptedCLIP, branch_shapes, fixed_prompts, subnet_prompts

SUBNET_PRECISIONS = ("fp32", "amp", "bf16")
CTX_INIT_MODES = ("default", "custom", "ensemble")


def searched_prompt_lengths(cfg, clip_model):
    """{"image": [...], "text": [...]} from PROMPT_CONFIG, or else the two alpha files."""
    opts = cfg.TRAINER.TRAINERSUBNET
    shapes = branch_shapes(clip_model)
    blocks = {branch: shapes[branch][0] for branch in prompt_config.BRANCHES}
    if opts.PROMPT_CONFIG:
        return prompt_config.read_prompt_config(opts.PROMPT_CONFIG, blocks)
    if opts.IMG_ALPHA_PATH or opts.TXT_ALPHA_PATH:
        return prompt_config.prompt_lengths_from_alphas(opts.IMG_ALPHA_PATH, opts.TXT_ALPHA_PATH, blocks)
    raise ValueError(
        "TrainerSubnet needs a prompt configuration: set TRAINER.TRAINERSUBNET.PROMPT_CONFIG to a "
        "searched_config.json (or a hand-written one), or TRAINER.TRAINERSUBNET.IMG_ALPHA_PATH and "
        "TXT_ALPHA_PATH to the search's alpha_e<E>_img.npy / alpha_e<E>_txt.npy."
    )


def text_input(cfg, classnames, clip_model):
    """Token embeddings (n_cls, n_tokens, width) and the token ids used to find each EOT position.

    ``default``: "a photo of a {class}."; ``custom``: the dataset's own template; ``ensemble``
    (the release's default): the embeddings of all IMAGENET_TEMPLATES averaged position by
    position, read out at the end-of-text position of the LAST template, as the release does.
    """
    mode = cfg.TRAINER.TRAINERSUBNET.CTX_INIT
    names = [clean_classname(name) for name in classnames]
    if mode == "default":
        templates = ["a photo of a {}."]
    elif mode == "custom":
        templates = [template_for(cfg)]
    else:
        templates = IMAGENET_TEMPLATES
    with torch.no_grad():
        embeddings = 0.0
        for template in templates:
            tokenized = tokenize([template.format(name) for name in names], clip_model)
            embeddings = embeddings + clip_model.token_embedding(tokenized).float()
        embeddings = embeddings / len(templates)
    # ``tokenized`` is the last template's: its EOT position is where features are read.
    return embeddings, tokenized


class PromptLearner(nn.Module):
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


class CustomCLIP(PromptedCLIP):
    """Frozen CLIP with the subnet's fixed-length deep prompts; ``forward(image)`` -> logits."""

    def __init__(self, cfg, classnames, clip_model, prompt_lengths):
        super().__init__(clip_model, cfg.TRAINER.TRAINERSUBNET.TEXT_CHUNK_SIZE)
        self.prompt_learner = PromptLearner(cfg, classnames, clip_model, prompt_lengths)
        self.kd_weight = float(cfg.TRAINER.TRAINERSUBNET.KD_WEIGHT)
        if self.kd_weight > 0:
            # Teacher text side: zero-shot CLIP, every template, computed once (no second CLIP).
            self.register_buffer("teacher_text_features", self._zeroshot_text_features(classnames, clip_model),
                                 persistent=False)

    def _zeroshot_text_features(self, classnames, clip_model):
        names = [clean_classname(name) for name in classnames]
        with torch.no_grad():
            features = 0.0
            for template in IMAGENET_TEMPLATES:
                tokenized = tokenize([template.format(name) for name in names], clip_model)
                features = features + self.encode_text(clip_model.token_embedding(tokenized), tokenized).float()
        return features / features.norm(dim=-1, keepdim=True)

    def forward(self, image, with_teacher=False):
        pl = self.prompt_learner
        image_features = self.encode_image(image, fixed_prompts(pl.ctx_img_lst, self.dtype))
        text_features = self.encode_text(pl.text_embeddings, pl.tokenized_prompts, fixed_prompts(pl.ctx_txt_lst, self.dtype))
        logits = self.logits(image_features, text_features)
        if not with_teacher:
            return logits
        with torch.no_grad():
            teacher = self.logits(self.encode_image(image), self.teacher_text_features)
        return logits, teacher


def distillation_loss(student_logits, teacher_logits, temperature):
    """KL(teacher || student) at ``temperature``, summed and divided by (batch x classes).

    Multiplied by T^2 (the usual gradient-scale correction; 1 at the release's T = 1).
    """
    log_student = F.log_softmax(student_logits / temperature, dim=-1)
    teacher = F.softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(log_student, teacher, reduction="sum") / student_logits.numel()
    return kl * temperature * temperature


@TRAINER_REGISTRY.register()
class TrainerSubnet(TrainerX):
    """DPL's training stage: trains the prompts of a fixed per-block configuration."""

    MODEL_NAME = "MultiModalPromptLearner"  # the release's checkpoint folder name

    def check_cfg(self, cfg):
        opts = cfg.TRAINER.TRAINERSUBNET
        if opts.PREC not in SUBNET_PRECISIONS:
            raise ValueError(f"TRAINER.TRAINERSUBNET.PREC is {opts.PREC!r}; expected one of {list(SUBNET_PRECISIONS)}.")
        if opts.CTX_INIT not in CTX_INIT_MODES:
            raise ValueError(
                f"TRAINER.TRAINERSUBNET.CTX_INIT is {opts.CTX_INIT!r}; expected one of {list(CTX_INIT_MODES)}."
            )
        if opts.KD_WEIGHT < 0 or opts.KD_TEMP <= 0:
            raise ValueError("TRAINER.TRAINERSUBNET.KD_WEIGHT must be >= 0 and KD_TEMP > 0.")

    def build_model(self):
        cfg, opts = self.cfg, self.cfg.TRAINER.TRAINERSUBNET
        classnames = self.dm.dataset.classnames
        clip_model, self.prec = prepare_clip(cfg, opts.PREC, self.device)
        lengths = searched_prompt_lengths(cfg, clip_model)
        for line in prompt_config.format_lengths({b: {"prompt_lengths": lengths[b]} for b in lengths}):
            print(f"Prompt configuration, {line}")

        self.model = CustomCLIP(cfg, classnames, clip_model, lengths)
        for name, param in self.model.named_parameters():
            param.requires_grad_(name.startswith("prompt_learner."))
        self.model.to(self.device)
        pl = self.model.prompt_learner
        n_params = sum(p.numel() for p in pl.parameters())
        print(f"# learnable prompt params: {n_params:,} ({n_params * 4 / 1024:.1f} KiB per checkpoint in fp32)")

        params = [p for p in pl.parameters() if p.numel() > 0]
        if not params:
            raise ValueError("The prompt configuration has 0 tokens in every block: nothing to train.")
        self.optim = build_optimizer(params, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model(self.MODEL_NAME, pl, self.optim, self.sched)
        self.scaler = make_grad_scaler(self.prec, self.device)

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        kd_weight = self.model.kd_weight
        with autocast(self.prec, self.device):
            if kd_weight > 0:
                output, teacher = self.model(image, with_teacher=True)
            else:
                output = self.model(image)
        output = output.float()
        loss_ce = F.cross_entropy(output, label)
        summary = {"loss_ce": loss_ce.item()}
        loss = loss_ce
        if kd_weight > 0:
            loss_kd = distillation_loss(output, teacher.float(), self.cfg.TRAINER.TRAINERSUBNET.KD_TEMP)
            loss = loss_ce + kd_weight * loss_kd
            summary["loss_kd"] = loss_kd.item()
        self.detect_anomaly(loss)
        self.optim.zero_grad(set_to_none=True)
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        average_gradients(self.model.prompt_learner.parameters())  # under torchrun: same step on every rank
        if self.scaler is None:
            self.optim.step()
        else:
            self.scaler.step(self.optim)
            self.scaler.update()
        summary.update(loss=loss.item(), acc=compute_accuracy(output, label)[0].item())
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    @torch.no_grad()
    def model_inference(self, input):
        with autocast(self.prec, self.device):
            return self.model(input).float()

    def load_model(self, directory, epoch=None):
        load_prompt_learners(self, directory, epoch)
