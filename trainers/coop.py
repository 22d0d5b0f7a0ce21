"""CoOp: Context Optimization (Zhou et al., IJCV 2022).

The class-name prompt "X X ... X <class>." has its X tokens replaced by learned
context vectors; CLIP stays frozen and only the context is trained.

Config (``TRAINER.COOP``): N_CTX (context length), CSC (one context per class),
CTX_INIT (initialise from words, e.g. "a photo of a"; then N_CTX is the number
of its tokens), CLASS_TOKEN_POSITION (end / middle / front), PREC.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from dassl.engine import TRAINER_REGISTRY, TrainerX
from dassl.metrics import compute_accuracy
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

CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


class PromptLearner(nn.Module):
    """Learned context vectors spliced into the token embeddings of every class prompt."""

    def __init__(self, cfg, classnames, clip_model):
        super().__init__()
        opts = cfg.TRAINER.COOP
        n_cls = len(classnames)
        dtype = clip_model.dtype
        ctx_dim = clip_model.ln_final.weight.shape[0]
        token_embedding = clip_model.token_embedding

        if opts.CTX_INIT:
            ctx_init = clean_classname(opts.CTX_INIT)
            n_ctx = num_tokens(ctx_init)
            with torch.no_grad():
                embedding = token_embedding(tokenize(ctx_init, clip_model)).type(dtype)
            ctx_vectors = embedding[0, 1:1 + n_ctx, :].clone()  # (n_ctx, ctx_dim)
            if opts.CSC:
                ctx_vectors = ctx_vectors.unsqueeze(0).repeat(n_cls, 1, 1)
            prompt_prefix = ctx_init
        else:
            n_ctx = opts.N_CTX
            shape = (n_cls, n_ctx, ctx_dim) if opts.CSC else (n_ctx, ctx_dim)
            ctx_vectors = torch.empty(*shape, dtype=dtype)
            nn.init.normal_(ctx_vectors, std=0.02)
            prompt_prefix = " ".join(["X"] * n_ctx)
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of context words (tokens): {n_ctx}")
        print("Class-specific contexts" if opts.CSC else "Unified context")

        # (n_ctx, ctx_dim), or (n_cls, n_ctx, ctx_dim) with CSC
        self.ctx = nn.Parameter(ctx_vectors)

        classnames = [clean_classname(name) for name in classnames]
        prompts = [f"{prompt_prefix} {name}." for name in classnames]
        tokenized_prompts = tokenize(prompts, clip_model)  # (n_cls, n_tokens)
        with torch.no_grad():
            embedding = token_embedding(tokenized_prompts).type(dtype)

        # Frozen pieces around the context: SOS, then class name + "." + EOS + padding.
        self.register_buffer("token_prefix", embedding[:, :1, :])  # (n_cls, 1, dim)
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:, :])  # (n_cls, *, dim)
        self.register_buffer("tokenized_prompts", tokenized_prompts, persistent=False)

        self.n_cls = n_cls
        self.n_ctx = n_ctx
        self.name_lens = [num_tokens(name) for name in classnames]
        self.class_token_position = opts.CLASS_TOKEN_POSITION

    def forward(self):
        ctx = self.ctx
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.n_cls, -1, -1)  # (n_cls, n_ctx, dim)
        prefix, suffix = self.token_prefix, self.token_suffix

        if self.class_token_position == "end":
            # [SOS][ctx][class][.][EOS]
            return torch.cat([prefix, ctx, suffix], dim=1)

        prompts = []
        half = self.n_ctx // 2
        for i, name_len in enumerate(self.name_lens):
            class_i = suffix[i:i + 1, :name_len, :]
            rest_i = suffix[i:i + 1, name_len:, :]  # "." EOS and padding
            ctx_i = ctx[i:i + 1]
            if self.class_token_position == "middle":
                # [SOS][ctx half 1][class][ctx half 2][.][EOS]
                parts = [prefix[i:i + 1], ctx_i[:, :half], class_i, ctx_i[:, half:], rest_i]
            else:
                # [SOS][class][ctx][.][EOS]
                parts = [prefix[i:i + 1], class_i, ctx_i, rest_i]
            prompts.append(torch.cat(parts, dim=1))
        return torch.cat(prompts, dim=0)  # (n_cls, n_tokens, dim)


class CustomCLIP(nn.Module):
    def __init__(self, cfg, classnames, clip_model):
        super().__init__()
        self.prompt_learner = PromptLearner(cfg, classnames, clip_model)
        self.image_encoder = clip_model.visual
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.dtype = clip_model.dtype

    def forward(self, image):
        image_features = self.image_encoder(image.type(self.dtype))  # (batch, embed)
        prompts = self.prompt_learner()
        text_features = self.text_encoder(prompts, self.prompt_learner.tokenized_prompts)

        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        return self.logit_scale.exp() * image_features @ text_features.t()  # (batch, n_cls)


@TRAINER_REGISTRY.register()
class CoOp(TrainerX):
    """Context Optimization, https://arxiv.org/abs/2109.01134."""

    def check_cfg(self, cfg):
        check_precision(cfg.TRAINER.COOP.PREC)
        position = cfg.TRAINER.COOP.CLASS_TOKEN_POSITION
        if position not in CLASS_TOKEN_POSITIONS:
            raise ValueError(
                f"TRAINER.COOP.CLASS_TOKEN_POSITION is {position!r}; expected one of "
                f"{list(CLASS_TOKEN_POSITIONS)}."
            )

    def build_model(self):
        cfg = self.cfg
        classnames = self.dm.dataset.classnames
        clip_model, self.prec = prepare_clip(cfg, cfg.TRAINER.COOP.PREC, self.device)

        print("Building custom CLIP")
        self.model = CustomCLIP(cfg, classnames, clip_model)
        print("Turning off gradients in both the image and the text encoder")
        freeze_all_but(self.model, "prompt_learner")

        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model.prompt_learner, cfg.MODEL.INIT_WEIGHTS)

        self.model.to(self.device)
        # Only the prompt learner is optimised, registered and checkpointed.
        self.optim = build_optimizer(self.model.prompt_learner, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("prompt_learner", self.model.prompt_learner, self.optim, self.sched)
        self.scaler = make_grad_scaler(self.prec, self.device)
        self.model = data_parallel_if_several_gpus(self.model, self.device)

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with autocast(self.prec, self.device):
            output = self.model(image)
            loss = F.cross_entropy(output, label)
        backward_and_update(self, loss, self.scaler)

        loss_summary = {
            "loss": loss.item(),
            "acc": compute_accuracy(output, label)[0].item(),
        }
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
