"""CoCoOp: Conditional Context Optimization (Zhou et al., CVPR 2022).

CoOp's shared context plus a per-image shift: a small meta-net maps the image
feature to one bias vector that is added to every context token, so each image
gets its own prompts. The text encoder therefore runs once per image (CoCoOp's
configs use batch size 1 for that reason).

Config (``TRAINER.COCOOP``): N_CTX, CTX_INIT, PREC.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from dassl.engine import TRAINER_REGISTRY, TrainerX
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import load_pretrained_weights

from trainers.common import (
    TextEncoder,
    autocast,
    backward_and_update,
    check_precision,
    clean_classname,
    data_parallel_if_several_gpus,
    freeze_all_but,
    load_prompt_learners,
    make_grad_scaler,
    num_tokens,
    prepare_clip,
    tokenize,
)


class PromptLearner(nn.Module):
    """Shared context vectors shifted by a meta-net of the image feature."""

    def __init__(self, cfg, classnames, clip_model):
        super().__init__()
        opts = cfg.TRAINER.COCOOP
        n_cls = len(classnames)
        dtype = clip_model.dtype
        ctx_dim = clip_model.ln_final.weight.shape[0]
        vis_dim = clip_model.visual.output_dim
        token_embedding = clip_model.token_embedding

        if opts.CTX_INIT:
            ctx_init = clean_classname(opts.CTX_INIT)
            n_ctx = num_tokens(ctx_init)
            with torch.no_grad():
                embedding = token_embedding(tokenize(ctx_init, clip_model)).type(dtype)
            ctx_vectors = embedding[0, 1:1 + n_ctx, :].clone()  # (n_ctx, ctx_dim)
            prompt_prefix = ctx_init
        else:
            n_ctx = opts.N_CTX
            ctx_vectors = torch.empty(n_ctx, ctx_dim, dtype=dtype)
            nn.init.normal_(ctx_vectors, std=0.02)
            prompt_prefix = " ".join(["X"] * n_ctx)
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of context words (tokens): {n_ctx}")

        self.ctx = nn.Parameter(ctx_vectors)  # (n_ctx, ctx_dim)

        # The paper's bottleneck is vis_dim // 16 (32 for ViT-B/16's 512).
        hidden = max(1, vis_dim // 16)
        self.meta_net = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(vis_dim, hidden)),
            ("relu", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(hidden, ctx_dim)),
        ])).to(dtype)

        classnames = [clean_classname(name) for name in classnames]
        prompts = [f"{prompt_prefix} {name}." for name in classnames]
        tokenized_prompts = tokenize(prompts, clip_model)  # (n_cls, n_tokens)
        with torch.no_grad():
            embedding = token_embedding(tokenized_prompts).type(dtype)

        self.register_buffer("token_prefix", embedding[:, :1, :])  # SOS
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:, :])  # class, ".", EOS
        self.register_buffer("tokenized_prompts", tokenized_prompts, persistent=False)

        self.n_cls = n_cls
        self.n_ctx = n_ctx

    def forward(self, im_features):
        """(batch, vis_dim) image features -> (batch, n_cls, n_tokens, ctx_dim) prompts."""
        bias = self.meta_net(im_features).unsqueeze(1)  # (batch, 1, ctx_dim)
        ctx_shifted = self.ctx.unsqueeze(0) + bias  # (batch, n_ctx, ctx_dim)

        prompts = []
        for ctx_i in ctx_shifted:
            ctx_i = ctx_i.unsqueeze(0).expand(self.n_cls, -1, -1)  # (n_cls, n_ctx, dim)
            prompts.append(torch.cat([self.token_prefix, ctx_i, self.token_suffix], dim=1))
        return torch.stack(prompts)


class CustomCLIP(nn.Module):
    def __init__(self, cfg, classnames, clip_model):
        super().__init__()
        self.prompt_learner = PromptLearner(cfg, classnames, clip_model)
        self.image_encoder = clip_model.visual
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.dtype = clip_model.dtype

    def forward(self, image, label=None):
        """Logits (batch, n_cls); in training mode with a label, the loss instead."""
        tokenized_prompts = self.prompt_learner.tokenized_prompts
        logit_scale = self.logit_scale.exp()

        image_features = self.image_encoder(image.type(self.dtype))
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        prompts = self.prompt_learner(image_features)

        logits = []
        for prompts_i, imf_i in zip(prompts, image_features):
            text_features = self.text_encoder(prompts_i, tokenized_prompts)  # (n_cls, embed)
            text_features = text_features / text_features.norm(dim=-1, keepdim=True)
            logits.append(logit_scale * imf_i @ text_features.t())
        logits = torch.stack(logits)

        if self.prompt_learner.training and label is not None:
            return F.cross_entropy(logits, label)
        return logits


@TRAINER_REGISTRY.register()
class CoCoOp(TrainerX):
    """Conditional Context Optimization, https://arxiv.org/abs/2203.05557."""

    def check_cfg(self, cfg):
        check_precision(cfg.TRAINER.COCOOP.PREC)

    def build_model(self):
        cfg = self.cfg
        classnames = self.dm.dataset.classnames
        clip_model, self.prec = prepare_clip(cfg, cfg.TRAINER.COCOOP.PREC, self.device)

        print("Building custom CLIP")
        self.model = CustomCLIP(cfg, classnames, clip_model)
        print("Turning off gradients in both the image and the text encoder")
        freeze_all_but(self.model, "prompt_learner")

        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model.prompt_learner, cfg.MODEL.INIT_WEIGHTS)

        self.model.to(self.device)
        self.optim = build_optimizer(self.model.prompt_learner, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("prompt_learner", self.model.prompt_learner, self.optim, self.sched)
        self.scaler = make_grad_scaler(self.prec, self.device)
        self.model = data_parallel_if_several_gpus(self.model, self.device)

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with autocast(self.prec, self.device):
            loss = self.model(image, label)
        backward_and_update(self, loss, self.scaler)

        loss_summary = {"loss": loss.item()}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return loss_summary

    def model_inference(self, input):
        with autocast(self.prec, self.device):
            return self.model(input)

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def load_model(self, directory, epoch=None):
        load_prompt_learners(self, directory, epoch)
