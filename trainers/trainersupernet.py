"""DPL search stage: a supernet of deep-prompt options, alphas and prompts trained in alternation.

Every transformer block of both CLIP encoders holds prompt options of 0..N tokens
(N = N_CTX_VISION / N_CTX_TEXT) mixed with softmax(alpha) weights. Each iteration takes one
alpha step on a validation batch, then one prompt step on a training batch. After epoch 0
(initial values) and every epoch the search writes ``alpha_e<E>_img.npy``,
``alpha_e<E>_txt.npy``, ``searched_config.json`` and a heat-map ``alpha_e<E>.png``; at the end
``convergence.png`` and ``search_history.json``. On several datasets (DATASET.NAME "A,B") the
alpha step's loss is the val batch's mean (``ALPHA_LOSS pooled``) or the mean of the datasets'
mean losses (``task_mean``). See docs/dpl.md.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from dassl.data.datasets import dataset_index_of_label
from dassl.engine import TRAINER_REGISTRY
from dassl.metrics import compute_accuracy
from dassl.utils import ConfigError, plural

from trainers import prompt_config
from trainers.base import PromptTrainer, check_choice
from trainers.common import autocast, clean_classname, get_rank, get_world_size, is_main_process, \
    load_prompt_learners, make_grad_scaler, tokenize
from trainers.deep_prompts import MODEL_NAME as RELEASE_MODEL_NAME, IMPLEMENTATIONS, MixedPrompt, branch_shapes, supernet_options
from trainers.model import Features, PromptedCLIP, PromptProvider
from trainers.search_data import ValidationBatches

SEARCH_PRECISIONS = ("fp32", "amp", "bf16")
VAL_BATCH_MODES = ("cycle", "first")
ALPHA_LOSSES = ("pooled", "task_mean")

OPTIONS = {
    "TRAINER.TRAINERSUPERNET": {
        "N_CTX_VISION": (6, "largest number of prompt tokens per image block (options 0..N)"),
        "N_CTX_TEXT": (6, "largest number of prompt tokens per text block (options 0..N)"),
        "CTX_INIT": ("a photo of a", "words before the class name in the (fixed) text input"),
        "PREC": ("fp32", "precision: fp32, amp or bf16"),
        "IMPL": ("fused", "mixture implementation: fused (one attention: the kernel formulation on CUDA, the "
                          "materialised one on CPU), fused_kernel, fused_math, or naive (one per option, the release's)"),
        "ALPHA_LR": (0.0035, "learning rate of the alphas' Adam"),
        "ALPHA_BETAS": ((0.5, 0.999), "betas of the alphas' Adam"),
        "ALPHA_WEIGHT_DECAY": (0.0, "weight decay of the alphas' Adam"),
        "ALPHA_INIT_STD": (1e-3, "alphas start ~ N(0, std^2)"),
        "VAL_BATCHES": ("cycle", "alpha-step batches: cycle (the whole shuffled val split) or first (the release)"),
        "VAL_BATCH_SIZE": (16, "batch size of the alpha steps"),
        "ALPHA_LOSS": ("pooled", "alpha-step loss over several datasets (DATASET.NAME \"A,B\"): pooled (mean over the "
                                 "val batch) or task_mean (mean over the batch's datasets of each one's mean loss)"),
        "INIT_IMG": ("normal", "image prompt options start ~ normal (N(0, 1)), uniform ([0, 1)) or a float std"),
        "INIT_TXT": ("uniform", "text prompt options start ~ normal, uniform or a float std"),
        "DOMINANCE_MARGIN": (0.1, "a block is single-dominant when its top softmax weight leads by more than this"),
        "TEXT_CHUNK_SIZE": (0, "> 0: classes per text chunk, with activation checkpointing (memory)"),
    },
}


class PromptLearner(PromptProvider):
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
        self.impl = opts.IMPL

    def text_input(self, image_features=None):
        return self.text_embeddings, self.tokenized_prompts

    def image_prompts(self, dtype):
        return self.mixed_prompts("image", self.impl, dtype)

    def text_prompts(self, dtype):
        return self.mixed_prompts("text", self.impl, dtype)

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
        chunk = cfg.TRAINER.TRAINERSUPERNET.TEXT_CHUNK_SIZE
        super().__init__(clip_model, PromptLearner(cfg, classnames, clip_model), text_chunk_size=chunk)


def rows_of(features, rows):
    """``Features`` of the samples selected by the boolean mask ``rows``; class text features (n_cls, embed)
    are kept whole, per-image ones (batch, n_cls, embed) are selected like the images."""
    def select(value, per_class=False):
        if isinstance(value, tuple):  # "raw_features": (image, text)
            return select(value[0]), select(value[1], per_class=True)
        return value if per_class and value.dim() == 2 else value[rows]

    return Features(select(features.image), select(features.text, per_class=True), features.logit_scale,
                    {name: select(value) for name, value in features.extras.items()})


def _set_trainable(params, flag):
    for p in params:
        p.requires_grad_(flag)


@TRAINER_REGISTRY.register()
class TrainerSupernet(PromptTrainer):
    """DPL's search stage (bilevel, first order): an alpha step, then a prompt step, per iteration."""

    CONFIG_SECTION = "TRAINERSUPERNET"
    MODEL_NAME = RELEASE_MODEL_NAME  # the release's checkpoint folder name
    PRECISIONS = SEARCH_PRECISIONS

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        opts = cfg.TRAINER.TRAINERSUPERNET
        check_choice("TRAINER.TRAINERSUPERNET.IMPL", opts.IMPL, IMPLEMENTATIONS)
        check_choice("TRAINER.TRAINERSUPERNET.VAL_BATCHES", opts.VAL_BATCHES, VAL_BATCH_MODES)
        check_choice("TRAINER.TRAINERSUPERNET.ALPHA_LOSS", opts.ALPHA_LOSS, ALPHA_LOSSES)
        for key in ("N_CTX_VISION", "N_CTX_TEXT"):
            if int(opts[key]) < 0:
                raise ConfigError(f"TRAINER.TRAINERSUPERNET.{key} must be >= 0 (got {opts[key]}).")

    # ------------------------------------------------------------------ data
    def build_data_loader(self):
        super().build_data_loader()  # several datasets: a comma-separated DATASET.NAME (dassl)
        opts = self.cfg.TRAINER.TRAINERSUPERNET
        self.val_batches = ValidationBatches(
            self.cfg, self.dm.dataset.val, opts.VAL_BATCH_SIZE, opts.VAL_BATCHES, seed=self.cfg.SEED,
            rank=get_rank(), world_size=get_world_size(),
        )

    # ----------------------------------------------------------------- model
    def build_custom_clip(self, cfg, classnames, clip_model):
        print("Building the supernet")
        return CustomCLIP(cfg, classnames, clip_model)

    def optimizer_parameters(self):
        return self.model.prompt_learner.prompt_parameters()  # the alphas have their own optimiser

    def build_model(self):
        super().build_model()
        opts = self.cfg.TRAINER.TRAINERSUPERNET
        pl = self.model.prompt_learner
        self.prompt_params, self.alpha_params = pl.prompt_parameters(), pl.alpha_parameters()
        print(
            f"Search space: image {plural(len(pl.ctx_img_lst), 'block')} x options 0..{pl.n_ctx_vision}, "
            f"text {plural(len(pl.ctx_txt_lst), 'block')} x options 0..{pl.n_ctx_text}; implementation: {pl.impl}"
        )
        self.alpha_optim = torch.optim.Adam(
            self.alpha_params,
            lr=opts.ALPHA_LR,
            betas=tuple(opts.ALPHA_BETAS),
            weight_decay=opts.ALPHA_WEIGHT_DECAY,
        )
        # One scaler per optimiser: their loss scales evolve independently.
        self.scalers = {"alpha": make_grad_scaler(self.prec, self.device), "prompt": self.scaler}

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
            if step == "alpha":
                loss, terms, output = self.alpha_loss(image, label)
            else:
                loss, terms, output = self.compute_loss(image, label, self.dataset_of_labels(label))
            lr_key = "TRAINER.TRAINERSUPERNET.ALPHA_LR" if step == "alpha" else "OPTIM.LR"
            self.optimizer_step(loss, optim, self.scalers[step], terms=terms, step=step, lr_key=lr_key)
        finally:
            _set_trainable(others, True)
        return loss.detach(), output.detach()

    def alpha_loss(self, image, label):
        """-> (loss, terms, logits) of an alpha step. ``ALPHA_LOSS task_mean`` on joined datasets: each
        term is the mean over the datasets present in the batch of that dataset's mean, so a dataset with
        many val images weighs as much as one with few; ``pooled``: the mean over the batch."""
        offsets = getattr(self.dm.dataset, "class_offsets", None)
        if self.cfg.TRAINER.TRAINERSUPERNET.ALPHA_LOSS != "task_mean" or offsets is None:
            return self.compute_loss(image, label, self.dataset_of_labels(label))
        head = self.model.head
        with autocast(self.prec, self.device):
            features = self.model.forward_features(image, extras=head.wants)
        dataset_index = dataset_index_of_label(label, offsets)
        logits = self.head_logits(features, dataset_index)  # restricted to each sample's dataset if per_task
        per_dataset = [head.losses(rows_of(features, dataset_index == k), logits[dataset_index == k],
                                   label[dataset_index == k]) for k in dataset_index.unique().tolist()]
        terms = {name: torch.stack([t[name] for t in per_dataset]).mean() for name in per_dataset[0]}
        loss = sum(head.weights[name] * value for name, value in terms.items())
        return loss, terms, logits

    # --------------------------------------------------------- checkpoints
    def checkpoint_extras(self, name):
        """The search state beside the prompts and alphas, in the same file: the alphas' optimiser and
        one gradient scaler per optimiser."""
        if name != self.MODEL_NAME:
            return {}
        return {"alpha_optimizer": self.alpha_optim.state_dict(),
                "grad_scalers": {k: s.state_dict() for k, s in self.scalers.items() if s is not None}}

    def restore_checkpoint_extras(self, name, checkpoint, path):
        if name != self.MODEL_NAME:
            return
        self.alpha_optim.load_state_dict(checkpoint["alpha_optimizer"])
        for key, state in checkpoint.get("grad_scalers", {}).items():
            if self.scalers.get(key) is not None:
                self.scalers[key].load_state_dict(state)
        print("Loaded the alpha optimizer")

    def load_model(self, directory, epoch=None):
        """Load prompts and alphas by name, also from an official release checkpoint (the whole model;
        it holds no alphas, the release's defect 3 in docs/dpl.md: they keep their initial values)."""
        load_prompt_learners(self, directory, epoch, keep=lambda key: key.startswith(("ctx_", "alphas_")),
                             may_lack=lambda key: key.startswith("alphas_"))

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
        alphas = self.model.prompt_learner.alphas()
        margin = self.cfg.TRAINER.TRAINERSUPERNET.DOMINANCE_MARGIN
        config = prompt_config.write_search_outputs(self.output_dir, epoch, alphas, margin)
        print(f"Searched configuration after epoch {epoch}:")
        for line in prompt_config.format_lengths(config):
            print(f"  {line}")

    def after_train(self):
        if is_main_process():
            prompt_config.write_search_summary(self.output_dir, self.cfg.TRAINER.TRAINERSUPERNET.DOMINANCE_MARGIN)
        super().after_train()
