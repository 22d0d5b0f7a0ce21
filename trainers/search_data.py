"""Data for DPL's search stage: the validation batches of the alpha steps.

* ``ValidationBatches``: the batches the alpha steps consume. ``cycle`` (default) walks through
  the whole shuffled val split and starts a new shuffled pass when it is exhausted; the batch of
  global step s is a pure function of (seed, s), so a resumed search sees exactly the batches an
  uninterrupted one would. ``first`` reproduces the official release, whose every alpha step
  uses the first batch of a sequential loader.

Several datasets in one search are the engine's (a comma-separated ``DATASET.NAME``, dassl's
``JoinedDataset`` and ``PerDatasetClassification``), as for every trainer: the val batches cycle
through the joined val split, so each dataset appears in proportion to its val size; with
``TRAINER.TRAINERSUPERNET.ALPHA_LOSS task_mean`` the alpha loss weighs the datasets of a batch
equally instead (trainers/trainersupernet.py).
"""
import math

import torch
from torch.utils.data import DataLoader, Sampler

from dassl.data.data_manager import DatasetWrapper, capped_num_workers
from dassl.data.transforms import build_transform


class CyclingBatchSampler(Sampler):
    """Endless index batches over shuffled passes of ``n`` items, starting at global step ``start``."""

    def __init__(self, n, batch_size, seed, start=0, stride=1):
        self.n, self.batch_size, self.seed, self.start, self.stride = n, batch_size, seed, start, stride
        self.per_pass = math.ceil(n / batch_size)

    def batch_indices(self, step):
        pass_index, position = divmod(step, self.per_pass)
        generator = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + pass_index)
        order = torch.randperm(self.n, generator=generator)
        return order[position * self.batch_size : (position + 1) * self.batch_size].tolist()

    def __iter__(self):
        step = self.start
        while True:
            yield self.batch_indices(step)
            step += self.stride


class ValidationBatches:
    """Validation batches for alpha steps, addressed by the global iteration number."""

    def __init__(self, cfg, val_items, batch_size, mode, seed, rank=0, world_size=1):
        if not val_items:
            raise ValueError(
                f"The validation split of {cfg.DATASET.NAME} is empty, but DPL's search needs validation data "
                f"for its alpha steps. Use DATASET.NUM_SHOTS >= 1 (val then holds min(shots, 4) images per "
                f"class) or a dataset whose split file has a non-empty 'val' list."
            )
        self.mode = mode
        self.batch_size = int(batch_size)
        self.seed = 0 if seed is None or seed < 0 else int(seed)
        self.dataset = DatasetWrapper(cfg, val_items, transform=build_transform(cfg, is_train=False), is_train=False)
        self.num_workers = capped_num_workers(cfg.DATALOADER.NUM_WORKERS)
        # Under torchrun, rank r of R takes batches r, R + r, 2R + r, ... of the same sequence.
        self.rank, self.world_size = rank, world_size
        self._iterator, self._next_step, self._first = None, None, None

    def _load(self, indices):
        return torch.utils.data.default_collate([self.dataset[i] for i in indices])

    def batch(self, step, device):
        """(images, labels) of the alpha step at global iteration ``step``."""
        step = step * self.world_size + self.rank
        if self.mode == "first":
            if self._first is None:
                self._first = self._load(range(min(self.batch_size, len(self.dataset))))
            batch = self._first
        else:
            if self._iterator is None or step != self._next_step:
                sampler = CyclingBatchSampler(
                    len(self.dataset), self.batch_size, self.seed, start=step, stride=self.world_size
                )
                # Its own generator: creating this iterator mid-run (on resume) must not draw from
                # the global RNG, or the training augmentations after it would differ.
                generator = torch.Generator().manual_seed(self.seed + step)
                loader = DataLoader(
                    self.dataset, batch_sampler=sampler, num_workers=self.num_workers, generator=generator
                )
                self._iterator = iter(loader)
            batch = next(self._iterator)
            self._next_step = step + self.world_size
        return batch["img"].to(device), batch["label"].to(device)
