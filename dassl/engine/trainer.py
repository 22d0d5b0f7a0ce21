"""Trainer base classes: lifecycle, checkpoints, evaluation, logging.

``TrainerBase`` owns the registered models/optimizers/schedulers and the generic loop
(``train -> before_train, [before_epoch, run_epoch, after_epoch]*, after_train``).
``SimpleTrainer`` adds config, data, evaluation and checkpoint policy. ``TrainerX``
(labelled data only; the base of every CoOp-family trainer) and ``TrainerXU``
(labelled + unlabelled) implement ``run_epoch``.
"""

import datetime
import os.path as osp
import time
import warnings
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from dassl.data import DataManager
from dassl.evaluation import build_evaluator
from dassl.evaluation.predictions import PredictionCollector, predictions_path
from dassl.modeling import build_backbone, build_head
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.engine import run_record
from dassl.utils import (
    AverageMeter,
    MetricMeter,
    average_gradients,
    barrier,
    count_num_param,
    get_local_rank,
    get_rng_state,
    get_world_size,
    list_checkpoints,
    remove_superseded_checkpoints,
    init_distributed_from_env,
    is_main_process,
    load_checkpoint,
    MissingFileError,
    load_pretrained_weights,
    mkdir_if_missing,
    resume_from_checkpoint,
    save_checkpoint,
    tolist_if_not,
)

__all__ = ["SimpleNet", "TrainerBase", "SimpleTrainer", "TrainerX", "TrainerXU"]


def checkpoints_present(folder):
    """A sentence naming the checkpoint files in ``folder`` (for errors about a missing one)."""
    present = list_checkpoints(folder)
    if not present:
        return "{} holds no checkpoint (model.pth.tar-<epoch>, model-best.pth.tar).".format(folder)
    return "checkpoints in {}: {} (--load-epoch <epoch>; without it model-best.pth.tar).".format(
        folder, ", ".join(present))


class SimpleNet(nn.Module):
    """Backbone (from ``dassl.modeling``) + optional MLP head + linear classifier."""

    def __init__(self, cfg, model_cfg, num_classes, **kwargs):
        super().__init__()
        self.backbone = build_backbone(
            model_cfg.BACKBONE.NAME, verbose=cfg.VERBOSE, pretrained=model_cfg.BACKBONE.PRETRAINED, **kwargs
        )
        fdim = self.backbone.out_features

        self.head = None
        if model_cfg.HEAD.NAME and model_cfg.HEAD.HIDDEN_LAYERS:
            self.head = build_head(
                model_cfg.HEAD.NAME,
                verbose=cfg.VERBOSE,
                in_features=fdim,
                hidden_layers=model_cfg.HEAD.HIDDEN_LAYERS,
                activation=model_cfg.HEAD.ACTIVATION,
                bn=model_cfg.HEAD.BN,
                dropout=model_cfg.HEAD.DROPOUT,
                **kwargs,
            )
            fdim = self.head.out_features

        self.classifier = nn.Linear(fdim, num_classes) if num_classes > 0 else None
        self._fdim = fdim

    @property
    def fdim(self):
        return self._fdim

    def forward(self, x, return_feature=False):
        f = self.backbone(x)
        if self.head is not None:
            f = self.head(f)
        if self.classifier is None:
            return f
        y = self.classifier(f)
        if return_feature:
            return y, f
        return y


class TrainerBase:
    """Registered models and the generic training loop."""

    def __init__(self):
        self._models = OrderedDict()
        self._optims = OrderedDict()
        self._scheds = OrderedDict()
        self._writer = None

    def register_model(self, name="model", model=None, optim=None, sched=None):
        """Register ``model`` (with its optimizer/scheduler, either may be None) under ``name``.

        The name is the checkpoint sub-folder: ``<output>/<name>/model.pth.tar-<epoch>``.
        """
        if self.__dict__.get("_models") is None:
            raise AttributeError("Cannot assign model before super().__init__() call")
        if self.__dict__.get("_optims") is None:
            raise AttributeError("Cannot assign optim before super().__init__() call")
        if self.__dict__.get("_scheds") is None:
            raise AttributeError("Cannot assign sched before super().__init__() call")
        assert name not in self._models, "Found duplicate model names"
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names=None):
        names_real = list(self._models.keys())
        if names is None:
            return names_real
        names = tolist_if_not(names)
        for name in names:
            assert name in names_real, 'Model "{}" is not registered; registered: {}'.format(name, names_real)
        return names

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        """Save every registered model to ``directory/<name>/``; only rank 0 writes.

        Besides Dassl's keys the file holds ``rng_state`` so a resumed run continues the
        same random stream as an uninterrupted one.
        """
        if is_main_process():
            rng_state = get_rng_state()
            for name in self.get_model_names():
                optim = self._optims[name]
                sched = self._scheds[name]
                save_checkpoint(
                    {
                        "state_dict": self._models[name].state_dict(),
                        "epoch": epoch + 1,
                        "optimizer": optim.state_dict() if optim is not None else None,
                        "scheduler": sched.state_dict() if sched is not None else None,
                        "val_result": val_result,
                        "rng_state": rng_state,
                        **self.checkpoint_extras(name),
                    },
                    osp.join(directory, name),
                    is_best=is_best,
                    model_name=model_name,
                )
        barrier()

    def kept_checkpoint_epoch(self, epoch):
        """Whether ``model.pth.tar-<epoch>`` stays once a later epoch is saved: the final epoch and every
        TRAIN.CHECKPOINT_FREQ-th; the others only let a killed run resume and are deleted when superseded.
        (model-best.pth.tar is a file of its own and always stays.)"""
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        return epoch == self.max_epoch or (freq > 0 and epoch % freq == 0)

    def save_epoch_checkpoint(self):
        """Every epoch: the learnable tensors and the state to resume (small), then the epoch files
        that are not kept deleted, once the pointer names the new one."""
        self.save_model(self.epoch, self.output_dir)
        if is_main_process():
            for name in self.get_model_names():
                remove_superseded_checkpoints(osp.join(self.output_dir, name), self.kept_checkpoint_epoch)

    def resume_model_if_exist(self, directory):
        """Resume every registered model from ``directory/<name>/checkpoint``; return the epoch to start at."""
        names = self.get_model_names()
        if not names:
            return 0
        if any(not osp.isfile(osp.join(directory, name, "checkpoint")) for name in names):
            print("No checkpoint found, train from scratch")
            return 0
        print("Found checkpoint at {} (will resume training)".format(directory))
        start_epoch = 0
        for name in names:
            start_epoch = resume_from_checkpoint(
                osp.join(directory, name), self._models[name], self._optims[name], self._scheds[name]
            )
            if type(self).restore_checkpoint_extras is not TrainerBase.restore_checkpoint_extras:
                folder = osp.join(directory, name)
                with open(osp.join(folder, "checkpoint")) as f:
                    path = osp.join(folder, f.readline().strip())
                self.restore_checkpoint_extras(name, load_checkpoint(path), path)
        return start_epoch

    def recorded_best_result(self, directory):
        """On resume, the validation result of the saved model-best.pth.tar (-inf without one), so a
        resumed best_val run keeps the model an uninterrupted one would."""
        names = self.get_model_names()
        path = osp.join(directory, names[0], "model-best.pth.tar") if names else ""
        if not osp.isfile(path):
            return -np.inf
        value = load_checkpoint(path).get("val_result")
        return -np.inf if value is None else value

    def checkpoint_extras(self, name):
        """More entries for the checkpoint of model ``name`` (state a trainer keeps beside its
        models: a second optimiser, gradient scalers, running averages); none by default."""
        return {}

    def restore_checkpoint_extras(self, name, checkpoint, path):
        """On resume, read back what ``checkpoint_extras`` added to model ``name``'s checkpoint."""

    def load_model(self, directory, epoch=None):
        """Load ``model-best.pth.tar`` (or ``model.pth.tar-<epoch>``) of every registered model."""
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given "
                  "(ignore this if it's done on purpose)")
            return
        model_file = "model-best.pth.tar" if epoch is None else "model.pth.tar-" + str(epoch)
        for name in self.get_model_names():
            model_path = osp.join(directory, name, model_file)
            if not osp.exists(model_path):
                raise MissingFileError(
                    "No model at {}. Check --model-dir and --load-epoch; {}".format(
                        model_path, checkpoints_present(osp.join(directory, name)))
                )
            checkpoint = load_checkpoint(model_path)
            val_result = checkpoint.get("val_result")
            val_text = "{:.1f}".format(val_result) if val_result is not None else "None"
            print("Load {} to {} (epoch={}, val_result={})".format(model_path, name, checkpoint["epoch"], val_text))
            self._models[name].load_state_dict(checkpoint["state_dict"])

    def set_model_mode(self, mode="train", names=None):
        """Train/eval mode for registered models only (a frozen CLIP keeps its own mode)."""
        for name in self.get_model_names(names):
            if mode == "train":
                self._models[name].train()
            elif mode in ("test", "eval"):
                self._models[name].eval()
            else:
                raise KeyError('Unknown model mode "{}"; expected "train", "test" or "eval"'.format(mode))

    def update_lr(self, names=None):
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def detect_anomaly(self, loss):
        if not torch.isfinite(loss).all():
            raise FloatingPointError("Loss is infinite or NaN!")

    def init_writer(self, log_dir):
        """Start a tensorboard writer (rank 0 only); without tensorboard installed, warn and go on."""
        if self.__dict__.get("_writer") is not None or not is_main_process():
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn("tensorboard is not installed: scalars are not written (pip install tensorboard)")
            return
        print("Initialize tensorboard (log_dir={})".format(log_dir))
        self._writer = SummaryWriter(log_dir=log_dir)

    def close_writer(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write_scalar(self, tag, scalar_value, global_step=None):
        if self._writer is not None:
            self._writer.add_scalar(tag, scalar_value, global_step)

    def train(self, start_epoch, max_epoch):
        """Generic loop; ``before_train`` may move ``self.start_epoch`` (resume)."""
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch
        self.before_train()
        for self.epoch in range(self.start_epoch, self.max_epoch):
            self.before_epoch()
            self.run_epoch()
            self.after_epoch()
        self.after_train()

    def before_train(self):
        pass

    def after_train(self):
        pass

    def before_epoch(self):
        pass

    def after_epoch(self):
        pass

    def run_epoch(self):
        raise NotImplementedError

    def test(self):
        raise NotImplementedError

    def parse_batch_train(self, batch):
        raise NotImplementedError

    def parse_batch_test(self, batch):
        raise NotImplementedError

    def forward_backward(self, batch):
        raise NotImplementedError

    def model_inference(self, input):
        raise NotImplementedError

    def model_zero_grad(self, names=None):
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss):
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names=None):
        for name in self.get_model_names(names):
            optim = self._optims[name]
            if optim is None:
                continue
            if get_world_size() > 1 and not isinstance(self._models[name], nn.parallel.DistributedDataParallel):
                average_gradients([p for group in optim.param_groups for p in group["params"]])
            optim.step()

    def model_backward_and_update(self, loss, names=None):
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)


class SimpleTrainer(TrainerBase):
    """Config-driven trainer: data, model, evaluator, checkpoint policy and ``test``."""

    def __init__(self, cfg):
        super().__init__()
        self.check_cfg(cfg)

        distributed = init_distributed_from_env(use_cuda=cfg.USE_CUDA)
        if torch.cuda.is_available() and cfg.USE_CUDA:
            self.device = torch.device("cuda", get_local_rank()) if distributed else torch.device("cuda")
        else:
            self.device = torch.device("cpu")

        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        self.cfg = cfg

        self.build_data_loader()
        self.build_model()
        # The dataset lets the evaluator report each dataset of a joined one (DATASET.NAME "A,B").
        dataset = getattr(getattr(self, "dm", None), "dataset", None)
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname, dataset=dataset)
        self.best_result = -np.inf

    def check_cfg(self, cfg):
        """Hook to validate the config; runs before ``self.cfg`` is set."""
        pass

    def build_data_loader(self):
        """Set ``train_loader_x/u``, ``val_loader``, ``test_loader``, ``num_classes``, ``lab2cname``, ``dm``."""
        dm = DataManager(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm

    def build_model(self):
        """Default model: SimpleNet over a registered backbone (CoOp-family trainers override this)."""
        cfg = self.cfg
        print("Building model")
        self.model = SimpleNet(cfg, cfg.MODEL, self.num_classes)
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model, cfg.MODEL.INIT_WEIGHTS)
        self.model.to(self.device)
        print("# params: {:,}".format(count_num_param(self.model)))
        self.optim = build_optimizer(self.model, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("model", self.model, self.optim, self.sched)
        device_count = torch.cuda.device_count()
        if device_count > 1 and self.device.type == "cuda" and get_world_size() == 1:
            print("Detected {} GPUs (use nn.DataParallel)".format(device_count))
            self.model = nn.DataParallel(self.model)

    def train(self):
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self):
        directory = self.cfg.RESUME if self.cfg.RESUME else self.cfg.OUTPUT_DIR
        self.start_epoch = self.resume_model_if_exist(directory)
        if self.start_epoch > 0:
            self.best_result = self.recorded_best_result(directory)
        # Tensorboard only on request (USE_WRITER, added by train.py), so plain runs need no tensorboard.
        if self.cfg.get("USE_WRITER", False):
            writer_dir = osp.join(self.output_dir, "tensorboard")
            if is_main_process():
                mkdir_if_missing(writer_dir)
            self.init_writer(writer_dir)
        self.time_start = time.time()

    def after_train(self):
        print("Finish training")
        do_test = not self.cfg.TEST.NO_TEST
        result = None
        if do_test:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                print("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                print("Deploy the last-epoch model")
            # The keyword only when asked: trainers overriding Dassl's test(split=None) keep working.
            if self.cfg.TEST.SAVE_PREDICTIONS:
                result = self.test(save_predictions=True)
            else:
                result = self.test()
        elapsed = round(time.time() - self.time_start)
        if is_main_process():  # once under torchrun
            print("Elapsed: {}".format(datetime.timedelta(seconds=elapsed)))
        self.record_completion("train", result, elapsed)
        self.close_writer()

    def record_completion(self, kind, result=None, elapsed_s=None):
        """Write <OUTPUT_DIR>/run_complete.json (rank 0): the run's only "finished" signal
        (dassl/engine/run_record.py). ``kind``: "train" (after the final test) or "eval" (--eval-only)."""
        if is_main_process():
            value = float(result) if isinstance(result, (int, float)) else None
            run_record.write_completion(
                self.output_dir, kind, result={"split": self.cfg.TEST.SPLIT, "value": value},
                elapsed_s=elapsed_s, epochs=self.max_epoch if kind == "train" else None)
        barrier()

    def after_epoch(self):
        do_test = not self.cfg.TEST.NO_TEST

        if do_test and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.validation_result()
            if curr_result > self.best_result:  # strict: ties keep the earlier model
                self.best_result = curr_result
                self.save_model(self.epoch, self.output_dir, val_result=curr_result, model_name="model-best.pth.tar")

        # Every epoch, so that a killed run resumes from its last one; kept: see kept_checkpoint_epoch.
        self.save_epoch_checkpoint()

    def validation_result(self):
        """What TEST.FINAL_MODEL best_val selects on: the val accuracy, or on a joined dataset
        (DATASET.NAME "A,B") the mean of the per-dataset val accuracies, so a large dataset does not
        outweigh the others. Never the test split: without a val split this is an error."""
        from dassl.data.datasets.joined import is_joined_dataset
        from dassl.errors import ConfigError

        if self.val_loader is None:
            raise ConfigError(
                "TEST.FINAL_MODEL best_val selects the model on the val split, but the data has none (the "
                "evaluation would fall back to the test split). Use a dataset with a val split, or "
                "TEST.FINAL_MODEL last_step.")
        result = self.test(split="val")
        per_dataset = getattr(self.evaluator, "counts_per_dataset", None)
        if is_joined_dataset(getattr(self.dm, "dataset", None)) and per_dataset:
            accuracies = [100.0 * c["correct"] / c["total"] for c in per_dataset.values() if c["total"]]
            result = sum(accuracies) / len(accuracies)
            print("Model selection: mean val accuracy over {} datasets = {:.2f}%".format(len(accuracies), result))
        return result

    @torch.no_grad()
    def test(self, split=None, save_predictions=False):
        """Evaluate on ``split`` ("val" or "test", default TEST.SPLIT); return the first metric (accuracy).

        ``save_predictions``: also write ``<OUTPUT_DIR>/predictions_<split>.npz`` (logits, labels,
        image paths, class names; ``dassl/evaluation/predictions.py``). ``after_train`` and
        train.py's ``--eval-only`` pass it when TEST.SAVE_PREDICTIONS is True; the per-epoch
        validation of ``after_epoch`` never does.
        """
        self.set_model_mode("eval")
        self.evaluator.reset()

        if split is None:
            split = self.cfg.TEST.SPLIT
        if split == "val" and self.val_loader is not None:
            data_loader = self.val_loader
        else:
            split = "test"  # no val split: fall back to test
            data_loader = self.test_loader

        print("Evaluate on the *{}* set".format(split))
        collector = PredictionCollector() if save_predictions else None
        for batch in tqdm(data_loader, disable=not is_main_process()):
            input, label = self.parse_batch_test(batch)
            output = self.model_inference(input)
            self.evaluator.process(output, label)
            if collector is not None:
                collector.process(batch, output, label)

        results = self.evaluator.evaluate()
        if collector is not None:
            collector.save(predictions_path(self.output_dir, split), len(data_loader.dataset),
                           self.prediction_classnames())
        for k, v in results.items():
            self.write_scalar("{}/{}".format(split, k), v, self.epoch)
        return list(results.values())[0]

    def prediction_classnames(self):
        """Name of each label 0..num_classes-1, for predictions_<split>.npz."""
        return [self.lab2cname.get(label, str(label)) for label in range(self.num_classes)]

    def model_inference(self, input):
        return self.model(input)

    def parse_batch_test(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def get_current_lr(self, names=None):
        name = self.get_model_names(names)[0]
        return self._optims[name].param_groups[0]["lr"]

    def _print_progress(self, losses, batch_time, data_time):
        """The per-batch log line, every TRAIN.PRINT_FREQ batches (every batch for short epochs)."""
        print_freq = self.cfg.TRAIN.PRINT_FREQ
        if (self.batch_idx + 1) % print_freq != 0 and self.num_batches >= print_freq:
            return
        nb_remain = (self.num_batches - self.batch_idx - 1) + (self.max_epoch - self.epoch - 1) * self.num_batches
        eta = str(datetime.timedelta(seconds=int(batch_time.avg * nb_remain)))
        info = [
            "epoch [{}/{}]".format(self.epoch + 1, self.max_epoch),
            "batch [{}/{}]".format(self.batch_idx + 1, self.num_batches),
            "time {:.3f} ({:.3f})".format(batch_time.val, batch_time.avg),
            "data {:.3f} ({:.3f})".format(data_time.val, data_time.avg),
            "{}".format(losses),
            "lr {:.4e}".format(self.get_current_lr()),
            "eta {}".format(eta),
        ]
        print(" ".join(info))

    def _write_train_scalars(self, losses):
        n_iter = self.epoch * self.num_batches + self.batch_idx
        for name, meter in losses.meters.items():
            self.write_scalar("train/" + name, meter.avg, n_iter)
        self.write_scalar("train/lr", self.get_current_lr(), n_iter)


def _set_sampler_epoch(data_loader, epoch):
    """Distributed samplers reshuffle from (seed, epoch); plain samplers need nothing."""
    sampler = getattr(data_loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


class TrainerX(SimpleTrainer):
    """Trains on labelled data (``train_loader_x``). ``forward_backward`` returns a dict of floats.

    ``self.batch_idx`` and ``self.num_batches`` are set before ``forward_backward`` runs, so
    trainers step the scheduler with ``if self.batch_idx + 1 == self.num_batches: self.update_lr()``.
    """

    def run_epoch(self):
        self.set_model_mode("train")
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        self.num_batches = len(self.train_loader_x)
        _set_sampler_epoch(self.train_loader_x, self.epoch)

        end = time.time()
        for self.batch_idx, batch in enumerate(self.train_loader_x):
            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(batch)
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            self._print_progress(losses, batch_time, data_time)
            self._write_train_scalars(losses)
            end = time.time()

    def parse_batch_train(self, batch):
        input = batch["img"].to(self.device)
        label = batch["label"].to(self.device)
        domain = batch["domain"].to(self.device)
        return input, label, domain


class TrainerXU(SimpleTrainer):
    """Trains on labelled + unlabelled batches drawn side by side (``forward_backward(batch_x, batch_u)``)."""

    def run_epoch(self):
        self.set_model_mode("train")
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()

        len_train_loader_x = len(self.train_loader_x)
        len_train_loader_u = len(self.train_loader_u)
        count_iter = self.cfg.TRAIN.COUNT_ITER
        if count_iter == "train_x":
            self.num_batches = len_train_loader_x
        elif count_iter == "train_u":
            self.num_batches = len_train_loader_u
        elif count_iter == "smaller_one":
            self.num_batches = min(len_train_loader_x, len_train_loader_u)
        else:
            raise ValueError('TRAIN.COUNT_ITER must be "train_x", "train_u" or "smaller_one", got "{}"'.format(
                count_iter))
        _set_sampler_epoch(self.train_loader_x, self.epoch)
        _set_sampler_epoch(self.train_loader_u, self.epoch)

        train_loader_x_iter = iter(self.train_loader_x)
        train_loader_u_iter = iter(self.train_loader_u)

        end = time.time()
        for self.batch_idx in range(self.num_batches):
            try:
                batch_x = next(train_loader_x_iter)
            except StopIteration:
                train_loader_x_iter = iter(self.train_loader_x)
                batch_x = next(train_loader_x_iter)
            try:
                batch_u = next(train_loader_u_iter)
            except StopIteration:
                train_loader_u_iter = iter(self.train_loader_u)
                batch_u = next(train_loader_u_iter)

            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(batch_x, batch_u)
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            self._print_progress(losses, batch_time, data_time)
            self._write_train_scalars(losses)
            end = time.time()

    def parse_batch_train(self, batch_x, batch_u):
        input_x = batch_x["img"].to(self.device)
        label_x = batch_x["label"].to(self.device)
        input_u = batch_u["img"].to(self.device)
        return input_x, label_x, input_u
