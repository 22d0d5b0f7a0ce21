"""TaskBalancedSampler: every batch holds the same number of items of every task."""
import torch

from dassl.data.samplers import TaskBalancedSampler, build_sampler


class Item:
    """What the sampler reads of a Datum: the task (``dataset``)."""

    def __init__(self, dataset):
        self.dataset = dataset


def items(sizes):
    return [Item(t) for t, n in enumerate(sizes) for _ in range(n)]


def test_batches_are_balanced_over_tasks_and_epochs_have_the_union_length():
    data = items([30, 5, 1])
    sampler = build_sampler("TaskBalancedSampler", data_source=data, batch_size=7)
    assert isinstance(sampler, TaskBalancedSampler)
    torch.manual_seed(0)
    indices = list(sampler)
    assert len(indices) == len(sampler) == (36 // 7) * 7
    for b in range(0, len(indices), 7):
        tasks = [data[i].dataset for i in indices[b:b + 7]]
        assert all(tasks.count(t) in (2, 3) for t in range(3)) and sum(tasks.count(t) == 3 for t in range(3)) == 1
    torch.manual_seed(0)
    assert list(sampler) == indices  # torch's RNG: seeded runs draw the same batches


def test_a_small_task_repeats_only_after_all_its_items():
    data = items([12, 3])
    torch.manual_seed(1)
    small = [i for i in TaskBalancedSampler(data, batch_size=4) if data[i].dataset == 1]
    assert sorted(small[:3]) == [12, 13, 14]
