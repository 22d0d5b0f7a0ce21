"""Index samplers for the data loaders (``build_sampler``), single-process or distributed."""

import copy
import random
from collections import defaultdict

import torch
from torch.utils.data import DistributedSampler, RandomSampler, Sampler, SequentialSampler

from dassl.utils.dist import get_rank, get_world_size

__all__ = [
    "build_sampler",
    "RandomDomainSampler",
    "SeqDomainSampler",
    "RandomClassSampler",
    "TaskBalancedSampler",
    "EvalDistributedSampler",
]


class EvalDistributedSampler(DistributedSampler):
    """Rank r reads items r, r + W, r + 2W, ... in order, without padding.

    torch's DistributedSampler pads the last round with repeated items so that every rank
    has the same count; evaluated that way, some images would be counted twice. Here the
    shards just differ by at most one item, and the evaluator gathers them, so every item
    of the split is counted exactly once.
    """

    def __init__(self, dataset, num_replicas=None, rank=None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(self.rank, len(self.dataset), self.num_replicas))
        self.total_size = len(self.dataset)

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))


class RandomDomainSampler(Sampler):
    """Each batch: ``n_domain`` random domains x ``batch_size // n_domain`` images each."""

    def __init__(self, data_source, batch_size, n_domain):
        self.data_source = data_source
        self.domain_dict = defaultdict(list)
        for i, item in enumerate(data_source):
            self.domain_dict[item.domain].append(i)
        self.domains = list(self.domain_dict.keys())
        if n_domain is None or n_domain <= 0:
            n_domain = len(self.domains)
        assert batch_size % n_domain == 0, "batch_size ({}) must be divisible by n_domain ({})".format(
            batch_size, n_domain)
        self.n_img_per_domain = batch_size // n_domain
        self.batch_size = batch_size
        self.n_domain = n_domain
        self.length = len(list(self.__iter__()))

    def _chosen_domains(self):
        return random.sample(self.domains, self.n_domain)

    def __iter__(self):
        domain_dict = copy.deepcopy(self.domain_dict)
        final_idxs = []
        while True:
            selected = []
            for domain in self._chosen_domains():
                idxs = domain_dict[domain]
                if len(idxs) < self.n_img_per_domain:
                    return iter(final_idxs)
                chosen = random.sample(idxs, self.n_img_per_domain)
                selected.extend(chosen)
                for idx in chosen:
                    idxs.remove(idx)
            final_idxs.extend(selected)

    def __len__(self):
        return self.length


class SeqDomainSampler(RandomDomainSampler):
    """Like RandomDomainSampler, but every batch takes all domains in sorted order."""

    def __init__(self, data_source, batch_size):
        super().__init__(data_source, batch_size, n_domain=0)

    def _chosen_domains(self):
        return sorted(self.domains)


class RandomClassSampler(Sampler):
    """Each batch: ``batch_size // n_ins`` classes x ``n_ins`` instances."""

    def __init__(self, data_source, batch_size, n_ins):
        if batch_size < n_ins:
            raise ValueError("batch_size={} must be no less than n_ins={}".format(batch_size, n_ins))
        self.batch_size, self.n_ins = batch_size, n_ins
        self.ncls_per_batch = batch_size // n_ins
        self.index_dic = defaultdict(list)
        for index, item in enumerate(data_source):
            self.index_dic[item.label].append(index)
        self.labels = list(self.index_dic.keys())
        assert len(self.labels) >= self.ncls_per_batch
        self.length = len(list(self.__iter__()))

    def __iter__(self):
        batch_idxs_dict = defaultdict(list)
        for label in self.labels:
            idxs = copy.deepcopy(self.index_dic[label])
            if len(idxs) < self.n_ins:
                idxs = random.choices(idxs, k=self.n_ins)  # upsample small classes
            random.shuffle(idxs)
            batch = []
            for idx in idxs:
                batch.append(idx)
                if len(batch) == self.n_ins:
                    batch_idxs_dict[label].append(batch)
                    batch = []
        avai_labels = list(self.labels)
        final_idxs = []
        while len(avai_labels) >= self.ncls_per_batch:
            for label in random.sample(avai_labels, self.ncls_per_batch):
                final_idxs.extend(batch_idxs_dict[label].pop(0))
                if not batch_idxs_dict[label]:
                    avai_labels.remove(label)
        return iter(final_idxs)

    def __len__(self):
        return self.length


class TaskBalancedSampler(Sampler):
    """Every batch holds (about) the same number of items of every task (``Datum.dataset``: the datasets
    of a joined ``DATASET.NAME "A,B"``), whatever the tasks' sizes.

    Each batch gives ``batch_size // n_tasks`` items to every task and the remaining
    ``batch_size % n_tasks`` to tasks drawn at random (a different draw each batch). Within a task,
    items are drawn without replacement from a shuffled queue that is refilled (reshuffled) when it
    runs out, so small tasks repeat within an epoch and large ones are sub-sampled. An epoch has as
    many batches as one pass over all items would, ``max(1, len(data_source) // batch_size)``: the
    same number of steps as ``RandomSampler``, with another mix of tasks.
    """

    def __init__(self, data_source, batch_size):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1, got {}".format(batch_size))
        self.batch_size = batch_size
        self.task_items = defaultdict(list)
        for index, item in enumerate(data_source):
            self.task_items[item.dataset].append(index)
        self.tasks = sorted(self.task_items)
        self.num_batches = max(1, len(data_source) // batch_size)

    def __iter__(self):
        # torch's global RNG, as RandomSampler: seeded runs and resumed runs draw the same batches
        generator = torch.Generator()
        generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        queues = {task: [] for task in self.tasks}

        def permuted(items):
            return [items[i] for i in torch.randperm(len(items), generator=generator).tolist()]

        def draw(task):
            if not queues[task]:
                queues[task] = permuted(self.task_items[task])
            return queues[task].pop()

        share, extra = divmod(self.batch_size, len(self.tasks))
        indices = []
        for _ in range(self.num_batches):
            batch = [draw(task) for task in self.tasks for _ in range(share)]
            batch += [draw(task) for task in permuted(self.tasks)[:extra]]
            indices.extend(permuted(batch))
        return iter(indices)

    def __len__(self):
        return self.num_batches * self.batch_size


def build_sampler(sampler_type, cfg=None, data_source=None, batch_size=32, n_domain=0, n_ins=16):
    """A sampler by name. Under torch.distributed, Random/Sequential become sharded samplers."""
    distributed = get_world_size() > 1
    if sampler_type == "RandomSampler":
        if distributed:
            seed = cfg.SEED if cfg is not None and cfg.SEED >= 0 else 0
            return DistributedSampler(data_source, shuffle=True, seed=seed)
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        if distributed:
            return EvalDistributedSampler(data_source, num_replicas=get_world_size(), rank=get_rank())
        return SequentialSampler(data_source)
    if distributed and sampler_type in ("RandomDomainSampler", "SeqDomainSampler", "RandomClassSampler",
                                        "TaskBalancedSampler"):
        raise NotImplementedError(
            "{} has no distributed version; run single-process or use RandomSampler.".format(sampler_type))
    if sampler_type == "RandomDomainSampler":
        return RandomDomainSampler(data_source, batch_size, n_domain)
    if sampler_type == "SeqDomainSampler":
        return SeqDomainSampler(data_source, batch_size)
    if sampler_type == "RandomClassSampler":
        return RandomClassSampler(data_source, batch_size, n_ins)
    if sampler_type == "TaskBalancedSampler":
        return TaskBalancedSampler(data_source, batch_size)
    raise ValueError("Unknown sampler type: {}".format(sampler_type))
