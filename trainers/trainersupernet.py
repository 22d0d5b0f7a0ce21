"""DPL search stage: a supernet of deep-prompt options, alphas and prompts trained in alternation.

Every transformer block of both CLIP encoders holds prompt options of 0..N tokens
(N = N_CTX_VISION / N_CTX_TEXT) mixed with softmax(alpha) weights. Each iteration takes one
alpha step on a validation batch, then one prompt step on a training batch. After epoch 0
(initial values) and every epoch the search writes ``alpha_e<E>_img.npy``,
``alpha_e<E>_txt.npy``, ``searched_config.json`` and a heat-map ``alpha_e<E>.png``; at the end
``convergence.png`` and ``search_history.json``. See docs/dpl.md.
"""
import glob
import os.path as osp
import re

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dassl.engine import TRAINER_REGISTRY, TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import load_checkpoint, save_checkpoint

from trainers import prompt_config
from trainers.common import (
    autocast,
    average_gradients,
    clean_classname,
    get_rank,
    get_world_size,
    is_main_process,
    make_grad_scaler,
    prepare_clip,
    tokenize,
)
from trainers.deep_prompts import IMPLEMENTATIONS, MixedPrompt, PromptedCLIP, branch_shapes, supernet_options
from trainers.search_data import MultiDataManager, ValidationBatches, build_search_data, per_dataset_accuracy

SEARCH_PRECISIONS = ("fp32", "amp", "bf16")
VAL_BATCH_MODES = ("cycle", "first")


class PromptLearner(nn.Module):
    """All prompt options and both alpha matrices; names as the official release's.

    ``ctx_img_lst.<block>.<i>`` / ``ctx_txt_lst.<block>.<i>`` hold option k = i + 1
    ((i + 1) tokens x width); ``alphas_img`` / ``alphas_txt`` are (blocks, N + 1).
    """

    def __init__(self, cfg, classnames, clip_model):
        super().__init__()
        opts = cfg.TRAINER.TRAINERSUPERNET
        shapes = branch_shapes(clip_model)
        (n_img, width_img), (n_txt, width_txt) = shapes["image"], shapes["text"]
        self.n_ctx_vision, self.n_ctx_text = int(opts.N_CTX_VISION), int(opts.N_CTX_TEXT)
        self.ctx_img_lst = supernet_options(n_img, width_img, self.n_ctx_vision, opts.INIT_IMG)
        self.ctx_txt_lst = supernet_options(n_txt, width_txt, self.n_ctx_text, opts.INIT_TXT)
        self.alphas_img = nn.Parameter(opts.ALPHA_INIT_STD * torch.randn(n_img, self.n_ctx_vision + 1))
        self.alphas_txt = nn.Parameter(opts.ALPHA_INIT_STD * torch.randn(n_txt, self.n_ctx_text + 1))

        # The text input is fixed during the search: "a photo of a {class}." embedded once.
        ctx_init = opts.CTX_INIT.replace("_", " ").strip()
        texts = [f"{ctx_init} {clean_classname(name)}." for name in classnames]
        tokenized = tokenize(texts, clip_model)  # (n_cls, context_length)
        with torch.no_grad():
            embeddings = clip_model.token_embedding(tokenized)  # (n_cls, context_length, width)
        # Class-dependent and derivable: kept out of checkpoints.
        self.register_buffer("text_embeddings", embeddings, persistent=False)
        self.register_buffer("tokenized_prompts", tokenized, persistent=False)

    def prompt_parameters(self):
        return list(self.ctx_img_lst.parameters()) + list(self.ctx_txt_lst.parameters())

    def alpha_parameters(self):
        return [self.alphas_img, self.alphas_txt]

    def mixed_prompts(self, branch, impl, dtype):
        """One ``MixedPrompt`` provider per block of ``branch`` ("image" or "text")."""
        options, alphas = (
            (self.ctx_img_lst, self.alphas_img) if branch == "image" else (self.ctx_txt_lst, self.alphas_txt)
        )
        log_weights = F.log_softmax(alphas.float(), dim=-1)  # mixture weights in float32
        return [
            MixedPrompt([p.to(dtype) for p in block_options], log_weights[b], impl)
            for b, block_options in enumerate(options)
        ]

    def alphas(self):
        return {"image": self.alphas_img.detach().cpu().numpy(), "text": self.alphas_txt.detach().cpu().numpy()}


class CustomCLIP(PromptedCLIP):
    """The supernet: frozen CLIP whose blocks mix all prompt options; ``forward(image)`` -> logits."""

    def __init__(self, cfg, classnames, clip_model):
        super().__init__(clip_model, cfg.TRAINER.TRAINERSUPERNET.TEXT_CHUNK_SIZE)
        self.prompt_learner = PromptLearner(cfg, classnames, clip_model)
        self.impl = cfg.TRAINER.TRAINERSUPERNET.IMPL

    def forward(self, image):
        pl = self.prompt_learner
        image_features = self.encode_image(image, pl.mixed_prompts("image", self.impl, self.dtype))
        text_features = self.encode_text(
            pl.text_embeddings, pl.tokenized_prompts, pl.mixed_prompts("text", self.impl, self.dtype)
        )
        return self.logits(image_features, text_features)


def _set_trainable(params, flag):
    for p in params:
        p.requires_grad_(flag)


@TRAINER_REGISTRY.register()
class TrainerSupernet(TrainerX):
    """DPL's search stage (bilevel, first order): an alpha step, then a prompt step, per iteration."""

    MODEL_NAME = "MultiModalPromptLearner"  # the release's checkpoint folder name

    def check_cfg(self, cfg):
        opts = cfg.TRAINER.TRAINERSUPERNET
        checks = [
            ("PREC", opts.PREC, SEARCH_PRECISIONS),
            ("IMPL", opts.IMPL, IMPLEMENTATIONS),
            ("VAL_BATCHES", opts.VAL_BATCHES, VAL_BATCH_MODES),
        ]
        for key, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"TRAINER.TRAINERSUPERNET.{key} is {value!r}; expected one of {list(allowed)}.")
        for key in ("N_CTX_VISION", "N_CTX_TEXT"):
            if int(opts[key]) < 0:
                raise ValueError(f"TRAINER.TRAINERSUPERNET.{key} must be >= 0 (got {opts[key]}).")

    # ------------------------------------------------------------------ data
    def build_data_loader(self):
        build_search_data(self)
        opts = self.cfg.TRAINER.TRAINERSUPERNET
        self.val_batches = ValidationBatches(
            self.cfg, self.dm.dataset.val, opts.VAL_BATCH_SIZE, opts.VAL_BATCHES, seed=self.cfg.SEED,
            rank=get_rank(), world_size=get_world_size(),
        )

    # ----------------------------------------------------------------- model
    def build_model(self):
        cfg, opts = self.cfg, self.cfg.TRAINER.TRAINERSUPERNET
        classnames = self.dm.dataset.classnames
        clip_model, self.prec = prepare_clip(cfg, opts.PREC, self.device)

        print("Building the supernet")
        self.model = CustomCLIP(cfg, classnames, clip_model)
        for name, param in self.model.named_parameters():
            param.requires_grad_(name.startswith("prompt_learner."))
        self.model.to(self.device)
        pl = self.model.prompt_learner
        self.prompt_params, self.alpha_params = pl.prompt_parameters(), pl.alpha_parameters()
        shapes = branch_shapes(clip_model)
        print(
            f"Search space: image {shapes['image'][0]} blocks x options 0..{pl.n_ctx_vision}, "
            f"text {shapes['text'][0]} blocks x options 0..{pl.n_ctx_text}; implementation: {self.model.impl}"
        )
        print(f"# prompt params: {sum(p.numel() for p in self.prompt_params):,}")

        self.optim = build_optimizer(self.prompt_params, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model(self.MODEL_NAME, pl, self.optim, self.sched)
        self.alpha_optim = torch.optim.Adam(
            self.alpha_params,
            lr=opts.ALPHA_LR,
            betas=tuple(opts.ALPHA_BETAS),
            weight_decay=opts.ALPHA_WEIGHT_DECAY,
        )
        # One scaler per optimiser: their loss scales evolve independently.
        self.scalers = {step: make_grad_scaler(self.prec, self.device) for step in ("alpha", "prompt")}

    # ------------------------------------------------------------- training
    def forward_backward(self, batch):
        step = self.epoch * self.num_batches + self.batch_idx  # global iteration: addresses the val batch
        val_image, val_label = self.val_batches.batch(step, self.device)
        loss_alpha, _ = self._step("alpha", val_image, val_label, self.alpha_params, self.alpha_optim)
        image, label = self.parse_batch_train(batch)
        loss, output = self._step("prompt", image, label, self.prompt_params, self.optim)
        summary = {
            "loss": loss.item(),
            "acc": compute_accuracy(output, label)[0].item(),
            "loss_alpha": loss_alpha.item(),
        }
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def _step(self, step, image, label, params, optim):
        """One optimisation step of ``params`` only: the other group gets no gradient."""
        others = self.prompt_params if step == "alpha" else self.alpha_params
        _set_trainable(others, False)
        _set_trainable(params, True)
        try:
            with autocast(self.prec, self.device):
                output = self.model(image)
            loss = F.cross_entropy(output.float(), label)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"The {step} step produced a non-finite loss ({loss.item()}) at epoch {self.epoch + 1}, "
                    f"batch {self.batch_idx + 1}. Lower the learning rate "
                    f"({'TRAINER.TRAINERSUPERNET.ALPHA_LR' if step == 'alpha' else 'OPTIM.LR'}) or use PREC fp32."
                )
            optim.zero_grad(set_to_none=True)
            scaler = self.scalers[step]
            (loss if scaler is None else scaler.scale(loss)).backward()
            average_gradients(params)  # under torchrun: every rank takes the same step
            if scaler is None:
                optim.step()
            else:
                scaler.step(optim)
                scaler.update()
        finally:
            _set_trainable(others, True)
        return loss.detach(), output.detach()

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    # --------------------------------------------------------- checkpoints
    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        """The prompt learner's checkpoint plus the search state, in ONE file (written atomically)."""
        state = {
            "state_dict": self.model.prompt_learner.state_dict(),
            "epoch": epoch + 1,
            "optimizer": self.optim.state_dict(),
            "scheduler": self.sched.state_dict(),
            "val_result": val_result,
            "rng_state": rng_state(),
            "alpha_optimizer": self.alpha_optim.state_dict(),
            "grad_scalers": {k: s.state_dict() for k, s in self.scalers.items() if s is not None},
        }
        save_checkpoint(state, osp.join(directory, self.MODEL_NAME), is_best=is_best, model_name=model_name)

    def resume_model_if_exist(self, directory):
        start_epoch = super().resume_model_if_exist(directory)
        if start_epoch > 0:
            folder = osp.join(directory, self.MODEL_NAME)
            with open(osp.join(folder, "checkpoint")) as f:
                checkpoint = load_checkpoint(osp.join(folder, f.readline().strip()))
            self.alpha_optim.load_state_dict(checkpoint["alpha_optimizer"])
            for key, state in checkpoint.get("grad_scalers", {}).items():
                if self.scalers.get(key) is not None:
                    self.scalers[key].load_state_dict(state)
            print("Loaded the alpha optimizer")
        return start_epoch

    def load_model(self, directory, epoch=None):
        """Load prompts and alphas by name (also from an official release checkpoint)."""
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        name = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        path = osp.join(directory, self.MODEL_NAME, name)
        if not osp.exists(path):
            raise FileNotFoundError(f'No checkpoint at "{path}" (expected <model-dir>/{self.MODEL_NAME}/{name}).')
        state_dict = load_checkpoint(path)["state_dict"]
        learnable = {k: v for k, v in state_dict.items() if k.startswith(("ctx_", "alphas_"))}
        missing, _ = self.model.prompt_learner.load_state_dict(learnable, strict=False)
        if missing:
            raise RuntimeError(
                f'Checkpoint "{path}" lacks {missing[:4]}{"..." if len(missing) > 4 else ""}; was it searched '
                f"with the same backbone and N_CTX_VISION / N_CTX_TEXT?"
            )
        print(f'Loaded prompts and alphas from "{path}"')

    # ------------------------------------------------------------- outputs
    def before_train(self):
        super().before_train()
        if self.start_epoch == 0:
            self._write_search_outputs(0)

    def after_epoch(self):
        # Outputs of this epoch first: a kill before the checkpoint only repeats this epoch.
        self._write_search_outputs(self.epoch + 1)
        super().after_epoch()

    def _write_search_outputs(self, epoch):
        if not is_main_process():
            return
        opts = self.cfg.TRAINER.TRAINERSUPERNET
        alphas = self.model.prompt_learner.alphas()
        prompt_config.save_alphas(self.output_dir, epoch, alphas)
        config = prompt_config.describe(alphas, epoch, opts.DOMINANCE_MARGIN)
        prompt_config.write_json(osp.join(self.output_dir, "searched_config.json"), config)
        print(f"Searched configuration after epoch {epoch}:")
        for line in prompt_config.format_lengths(config):
            print(f"  {line}")
        from tools.plot_alpha import plot_alpha_heatmaps

        plot_alpha_heatmaps(
            alphas["image"], alphas["text"], osp.join(self.output_dir, f"alpha_e{epoch}.png"), title=f"epoch {epoch}"
        )

    def after_train(self):
        if is_main_process():
            history = search_history(self.output_dir, self.cfg.TRAINER.TRAINERSUPERNET.DOMINANCE_MARGIN)
            prompt_config.write_json(osp.join(self.output_dir, "search_history.json"), history)
            from tools.plot_alpha import plot_convergence

            plot_convergence(history, osp.join(self.output_dir, "convergence.png"))
        super().after_train()

    # ----------------------------------------------------------- evaluation
    def test(self, split=None):
        """Accuracy over the whole split; with several datasets, also per dataset."""
        result = super().test(split)
        if isinstance(self.dm, MultiDataManager):
            gather = getattr(self.evaluator, "_gather", None)  # all ranks' predictions (our engine)
            y_true, y_pred = gather() if gather else (self.evaluator._y_true, self.evaluator._y_pred)
            for name, accuracy in per_dataset_accuracy(self.dm.dataset, y_true, y_pred).items():
                print(f"* accuracy on {name}: {accuracy:.1f}%")
        return result

    @torch.no_grad()
    def model_inference(self, input):
        with autocast(self.prec, self.device):
            return self.model(input).float()


def rng_state():
    """Every RNG state, for exact resume (our engine); None on upstream Dassl, which has no helper."""
    try:
        from dassl.utils.torchtools import get_rng_state
    except ImportError:  # pragma: no cover - only on upstream Dassl
        return None
    return get_rng_state()


def search_history(output_dir, margin):
    """Per epoch: alpha difference and number of single-dominant blocks, read from the alpha files."""
    epochs = sorted(
        int(m.group(1))
        for m in (re.search(r"alpha_e(\d+)_img\.npy$", p) for p in glob.glob(osp.join(output_dir, "alpha_e*_img.npy")))
        if m
    )
    history, previous = [], None
    for epoch in epochs:
        weights = {
            branch: prompt_config.softmax_rows(np.load(prompt_config.alpha_path(output_dir, epoch, branch)))
            for branch in prompt_config.BRANCHES
        }
        entry = {"epoch": epoch}
        for branch, suffix in prompt_config.ALPHA_SUFFIX.items():
            entry[f"alpha_difference_{suffix}"] = (
                0.0 if previous is None else prompt_config.alpha_difference(previous[branch], weights[branch])
            )
            entry[f"dominant_{suffix}"] = prompt_config.dominant_count(weights[branch], margin)
        history.append(entry)
        previous = weights
    return history
