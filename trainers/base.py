"""The base trainer of every prompt learner: what a method file would otherwise copy.

``PromptTrainer(TrainerX)`` owns, once for all methods:
  * ``build_model``: prepare CLIP (load, check the input size, cast for PREC), build the method's
    ``CustomCLIP`` (a ``PromptedCLIP``: provider + head), freeze everything but the learnable
    modules (the prompt learner and the head), optional ``MODEL.INIT_WEIGHTS``, the optimiser
    (parameter groups by module, so ``OPTIM.STAGED_LR`` / ``OPTIM.NEW_LAYERS ["head"]`` work) and
    the scheduler, and the registration under the release's checkpoint folder name;
  * ``forward_backward``: features -> head logits (restricted to the sample's own dataset with
    ``DATASET.LABEL_SPACE per_task``) -> named loss terms, each logged, -> ONE ``optimizer_step``;
  * ``optimizer_step``: non-finite check naming epoch, batch and loss term, gradient scaling for
    amp, gradient averaging under torchrun;
  * ``model_inference`` (head logits, float32) and ``load_model`` (drops class-dependent buffers).

A method sets the class attributes and writes ``build_custom_clip``:

    CONFIG_SECTION = "COOP"              # its options: cfg.TRAINER.COOP
    MODEL_NAME = "prompt_learner"        # checkpoint folder of the prompt learner
    PRECISIONS = ("fp16", "fp32", "amp", "bf16")
"""
import json
import os
import re

import torch

from dassl.engine import TrainerX, run_record
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import ConfigError, load_pretrained_weights, plural

from trainers.common import (
    PRECISIONS,
    autocast,
    average_gradients,
    get_rank,
    get_world_size,
    load_prompt_learners,
    make_grad_scaler,
    prepare_clip,
    text_cut,
)

OPTIONS = {
    "MODEL": {
        "TEXT_CUT_AFTER_EOT": (True, "run the text tower only up to the last end-of-text token of the prompts "
                                     "(exact: the tower is causal; False runs all 77 positions, for comparison)"),
        "TEXT_SHARD_CLASSES": (True, "under torchrun, each process encodes a slice of the class prompts and the "
                                     "features are all-gathered with their gradients (not for image-conditioned "
                                     "text such as CoCoOp's)"),
    },
}


def check_choice(key, value, allowed):
    """Raise a readable error when config ``key`` is not one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{key} is {value!r}; expected one of {list(allowed)}.")
    return value


class PromptTrainer(TrainerX):
    """A CLIP prompt learner: provider + head on frozen CLIP (see the module docstring)."""

    CONFIG_SECTION = ""
    MODEL_NAME = "prompt_learner"
    PRECISIONS = PRECISIONS
    TRAINS = True  # False: nothing is learned (zero-shot), nothing is registered or checkpointed
    # Keys of the method's section that decide the shapes of its checkpointed tensors (named when a
    # checkpoint does not fit); None: those whose name says so (N_CTX*, CSC, *DEPTH*).
    SHAPE_KEYS = None

    # ------------------------------------------------------------------ config
    def options(self, cfg=None):
        return (cfg or self.cfg).TRAINER[self.CONFIG_SECTION]

    def check_cfg(self, cfg):
        check_choice(f"TRAINER.{self.CONFIG_SECTION}.PREC", self.options(cfg).PREC, self.PRECISIONS)

    # ------------------------------------------------------------------- model
    def build_custom_clip(self, cfg, classnames, clip_model):
        """The method's ``CustomCLIP`` (a ``PromptedCLIP``)."""
        raise NotImplementedError

    def build_model(self):
        cfg = self.cfg
        clip_model, self.prec = prepare_clip(cfg, self.options().PREC, self.device)
        print("Building custom CLIP")
        with text_cut(cfg.MODEL.TEXT_CUT_AFTER_EOT):  # also for features computed while building
            self.model = self.build_custom_clip(cfg, self.dm.dataset.classnames, clip_model)
        from trainers.dept import attach_dept  # here: trainers.dept subclasses the method trainers

        attach_dept(self, cfg)  # TRAINER.DEPT.ENABLED: DePT's CAT head around the method's head
        self.model.to(self.device)
        self.scaler = make_grad_scaler(self.prec, self.device)
        if get_world_size() > 1 and cfg.MODEL.TEXT_SHARD_CLASSES and self.model.prompt_learner is not None \
                and not self.model.prompt_learner.image_conditioned:
            self.model.text_shard = (get_rank(), get_world_size())
            print(f"Class prompts encoded in {plural(get_world_size(), 'slice')}, one per process")
        if not self.TRAINS:
            self.model.requires_grad_(False)
            return

        print("Turning off gradients in both the image and the text encoder")
        trainable = self.learnable_modules()
        self.model.requires_grad_(False)
        for module in trainable.values():
            module.requires_grad_(True)
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model.prompt_learner, cfg.MODEL.INIT_WEIGHTS)
        params = self.optimizer_parameters()
        if not params:
            raise ValueError(f"{type(self).__name__} has no learnable tensor: nothing would be trained.")
        n_params = sum(p.numel() for p in params)
        print(f"# learnable parameters: {n_params:,}")

        self.optim = build_optimizer(self.parameter_groups(trainable, params), self.plain_optim_cfg())
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        # The prompt learner alone under the release's folder name: its checkpoints stay loadable.
        self.register_model(self.MODEL_NAME, self.model.prompt_learner, self.optim, self.sched)
        if "head" in trainable:
            self.register_model("head", self.model.head)

    def parameter_groups(self, modules, params):
        """One group by default; with OPTIM.STAGED_LR one per learnable module (by its name, e.g.
        "head"): modules in OPTIM.NEW_LAYERS get OPTIM.LR, the others LR x OPTIM.BASE_LR_MULT."""
        optim = self.cfg.OPTIM
        head_lr_mult = getattr(self.model.head, "lr_mult", None)
        if head_lr_mult is not None:  # a head with its own factor (DePT): "head" at LR x factor
            chosen = {id(p) for p in params}
            base_lr = optim.LR * (optim.BASE_LR_MULT if optim.STAGED_LR else 1.0)
            groups = [{"params": [p for p in module.parameters() if id(p) in chosen],
                       "lr": optim.LR * head_lr_mult if name == "head" else base_lr}
                      for name, module in modules.items()]
            return [group for group in groups if group["params"]]
        if not optim.STAGED_LR:
            return params
        new_layers = [optim.NEW_LAYERS] if isinstance(optim.NEW_LAYERS, str) else list(optim.NEW_LAYERS)
        unknown = [name for name in new_layers if name not in modules]
        if unknown:
            raise ConfigError(
                f"OPTIM.NEW_LAYERS names {unknown}, but the learnable modules of {type(self).__name__} are "
                f"{list(modules)}; e.g. OPTIM.NEW_LAYERS \"['head']\" for a head with parameters."
            )
        chosen = {id(p) for p in params}
        groups = []
        for name, module in modules.items():
            group = [p for p in module.parameters() if id(p) in chosen]
            if group:
                lr = optim.LR if name in new_layers else optim.LR * optim.BASE_LR_MULT
                groups.append({"params": group, "lr": lr})
        return groups

    def plain_optim_cfg(self):
        """OPTIM without STAGED_LR: the groups are made by ``parameter_groups``, by module."""
        optim = self.cfg.OPTIM.clone()
        optim.defrost()
        optim.STAGED_LR = False
        return optim

    def learnable_modules(self):
        """{name: module} trained and checkpointed: the prompt learner, and the head if it learns."""
        modules = {self.MODEL_NAME: self.model.prompt_learner}
        if any(True for _ in self.model.head.parameters()):
            modules["head"] = self.model.head
        return modules

    def optimizer_parameters(self):
        """Tensors the main optimiser updates (empty 0-token prompts left out)."""
        return [p for m in self.learnable_modules().values() for p in m.parameters()
                if p.requires_grad and p.numel() > 0]

    # ---------------------------------------------------------------- training
    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def parse_batch_test(self, batch):
        # The dataset of each sample, for DATASET.LABEL_SPACE per_task at test time.
        self._batch_dataset = self._dataset_index(batch)
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def _dataset_index(self, batch):
        index = batch.get("dataset")
        return None if index is None else index.to(self.device)

    def per_task(self):
        """DATASET.LABEL_SPACE per_task on a joined dataset (several comma-separated names)."""
        return (self.cfg.DATASET.get("LABEL_SPACE", "concatenated") == "per_task"
                and getattr(self.dm.dataset, "class_offsets", None) is not None)

    def dataset_of_labels(self, label):
        """Dataset index of each label of a joined dataset (None unless per_task)."""
        if not self.per_task():
            return None
        from dassl.data.datasets import dataset_index_of_label  # our engine's joined datasets

        return dataset_index_of_label(label, self.dm.dataset.class_offsets)

    def head_logits(self, features, dataset_index=None):
        """The head's logits; with LABEL_SPACE per_task, only the sample's own dataset's classes."""
        logits = self.model.head.logits(features)
        if dataset_index is not None and self.per_task():
            logits = self.dm.dataset.restrict_logits(logits, dataset_index)
        return logits

    def compute_loss(self, image, label, dataset_index=None):
        """-> (loss, {term: value}, logits): the head's weighted sum of its named terms."""
        head = self.model.head
        with autocast(self.prec, self.device):
            features = self.model.forward_features(image, extras=head.wants)
        logits = self.head_logits(features, dataset_index)
        terms = head.losses(features, logits, label)
        loss = sum(head.weights[name] * value for name, value in terms.items())
        return loss, terms, logits

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        loss, terms, logits = self.compute_loss(image, label, self.dataset_of_labels(label))
        self.optimizer_step(loss, self.optim, self.scaler, terms=terms)

        summary = {"loss": loss.item(), "acc": compute_accuracy(logits, label)[0].item()}
        summary.update({f"loss_{name}": value.item() for name, value in terms.items()})
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def optimizer_step(self, loss, optim, scaler=None, terms=None, step="", lr_key="OPTIM.LR"):
        """zero_grad, backward (scaled for amp), average over processes, step: the only one.

        ``step`` names the step in errors (the DPL search has two), ``lr_key`` its learning rate.
        """
        self.check_finite(loss, terms, step, lr_key)
        optim.zero_grad(set_to_none=True)
        (loss if scaler is None else scaler.scale(loss)).backward()
        if get_world_size() > 1:  # under torchrun: every rank takes the same step
            average_gradients([p for group in optim.param_groups for p in group["params"]])
        if scaler is None:
            optim.step()
        else:
            scaler.step(optim)
            scaler.update()

    def check_finite(self, loss, terms=None, step="", lr_key="OPTIM.LR"):
        if torch.isfinite(loss).all():
            return
        bad = [name for name, value in (terms or {}).items() if not torch.isfinite(value).all()]
        what = f"the {step} step" if step else "training"
        raise FloatingPointError(
            f"{what.capitalize()} produced a non-finite loss ({loss.item()}) at epoch {self.epoch + 1}, "
            f"batch {self.batch_idx + 1}" + (f"; non-finite term(s): {bad}" if bad else "")
            + f". Lower the learning rate ({lr_key}) or use TRAINER.{self.CONFIG_SECTION}.PREC fp32."
        )

    # --------------------------------------------------------------- inference
    def test(self, *args, **kwargs):
        """The engine's evaluation, with the class text features computed once for the whole call
        (every method whose text does not depend on the image); dropped when it returns."""
        with self.model.cached_text_features():
            return super().test(*args, **kwargs)

    def model_inference(self, input):
        """Logits (batch, n_cls) in float32; differentiable (``test`` runs it under no_grad)."""
        with autocast(self.prec, self.device):
            features = self.model.forward_features(input, extras=getattr(self.model.head, "wants_at_test", ()))
        # the datasets of the batch parse_batch_test just read (used once, then dropped)
        return self.head_logits(features, self.__dict__.pop("_batch_dataset", None))

    # ------------------------------------------------------------- checkpoints
    def checkpoint_extras(self, name):
        """The amp gradient scaler beside the prompt learner: a resumed amp run keeps its loss scale."""
        if name == self.MODEL_NAME and getattr(self, "scaler", None) is not None:
            return {"grad_scaler": self.scaler.state_dict()}
        return {}

    def restore_checkpoint_extras(self, name, checkpoint, path):
        if name == self.MODEL_NAME and getattr(self, "scaler", None) is not None and "grad_scaler" in checkpoint:
            self.scaler.load_state_dict(checkpoint["grad_scaler"])

    def load_model(self, directory, epoch=None):
        if not self.TRAINS:
            return
        load_prompt_learners(self, directory, epoch)

    def shape_keys(self):
        """Dotted config keys that shape the checkpointed tensors: the backbone's and the method's."""
        section = self.options()
        names = self.SHAPE_KEYS
        if names is None:
            names = [key for key in section if re.search(r"N_CTX|CSC|DEPTH", key)]
        return ["MODEL.BACKBONE.NAME", "MODEL.BACKBONE.PATH"] + [f"TRAINER.{self.CONFIG_SECTION}.{key}"
                                                                 for key in names if key in section]

    def checkpoint_hint(self, directory):
        """What to check when a checkpoint of ``directory`` does not fit: this trainer's shape keys, with
        the values the training recorded (its run_settings.json) where they differ from this run's."""
        recorded = (run_record.read_settings(directory) or {}).get("config") if os.path.isdir(directory) else None
        flat = run_record.flatten(recorded) if recorded else {}
        differ = []
        for key in self.shape_keys():
            node = self.cfg
            for part in key.split("."):
                node = node.get(part, "")
            if key in flat and json.dumps(flat[key]) != json.dumps(json.loads(json.dumps(node))):
                differ.append(f"{key} {flat[key]!r} there, {node!r} here")
        hint = (f"Was it trained with {self.cfg.TRAINER.NAME} and the same settings of "
                f"{', '.join(self.shape_keys())}?")
        if differ:
            hint += f" Its run_settings.json differs: {'; '.join(differ)}."
        return hint
