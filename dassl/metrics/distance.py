"""Pairwise distances between two sets of feature vectors."""

import torch
import torch.nn.functional as F

__all__ = ["compute_distance_matrix", "euclidean_squared_distance", "cosine_distance"]


def compute_distance_matrix(input1, input2, metric="euclidean"):
    """``(m, d)`` x ``(n, d)`` -> ``(m, n)``; metric "euclidean" (squared) or "cosine"."""
    assert isinstance(input1, torch.Tensor) and isinstance(input2, torch.Tensor)
    assert input1.dim() == 2 and input2.dim() == 2, "Expected 2-D tensors, got {}-D and {}-D".format(
        input1.dim(), input2.dim())
    assert input1.size(1) == input2.size(1), "Feature dims differ: {} vs {}".format(input1.size(1), input2.size(1))
    if metric == "euclidean":
        return euclidean_squared_distance(input1, input2)
    if metric == "cosine":
        return cosine_distance(input1, input2)
    raise ValueError('Unknown distance metric: {}. Please choose either "euclidean" or "cosine"'.format(metric))


def euclidean_squared_distance(input1, input2):
    sq1 = input1.pow(2).sum(dim=1, keepdim=True)  # (m, 1)
    sq2 = input2.pow(2).sum(dim=1, keepdim=True).t()  # (1, n)
    return sq1 + sq2 - 2 * input1 @ input2.t()


def cosine_distance(input1, input2):
    return 1 - F.normalize(input1, p=2, dim=1) @ F.normalize(input2, p=2, dim=1).t()
