"""Minimal ``dassl.modeling``: registries and builders for SimpleNet, plus ops helpers.

Dassl's own backbones (ResNets, VGG, ...) are not shipped: CoOp-family trainers build
CLIP themselves. Register a backbone with ``@BACKBONE_REGISTRY.register()`` to use SimpleNet.
"""

import torch.nn as nn

from dassl.utils import Registry, check_availability

__all__ = ["BACKBONE_REGISTRY", "HEAD_REGISTRY", "NETWORK_REGISTRY", "Backbone", "build_backbone", "build_head"]

BACKBONE_REGISTRY = Registry("BACKBONE")
HEAD_REGISTRY = Registry("HEAD")
NETWORK_REGISTRY = Registry("NETWORK")


class Backbone(nn.Module):
    """A feature extractor; subclasses set ``self._out_features`` (the feature width)."""

    def __init__(self):
        super().__init__()

    @property
    def out_features(self):
        return getattr(self, "_out_features", None)


def build_backbone(name, verbose=True, **kwargs):
    check_availability(name, BACKBONE_REGISTRY.registered_names())
    if verbose:
        print("Backbone: {}".format(name))
    return BACKBONE_REGISTRY.get(name)(**kwargs)


def build_head(name, verbose=True, **kwargs):
    check_availability(name, HEAD_REGISTRY.registered_names())
    if verbose:
        print("Head: {}".format(name))
    return HEAD_REGISTRY.get(name)(**kwargs)


@HEAD_REGISTRY.register()
def mlp(in_features=2048, hidden_layers=(), activation="relu", bn=True, dropout=0.0):
    """Linear (+BN) + activation (+dropout) per hidden layer; ``out_features`` is the last width."""
    activations = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}
    if activation not in activations:
        raise ValueError("Unknown MLP activation {}; expected one of {}".format(activation, list(activations)))
    if isinstance(hidden_layers, int):
        hidden_layers = [hidden_layers]
    layers, width = [], in_features
    for hidden in hidden_layers:
        layers.append(nn.Linear(width, hidden))
        if bn:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(activations[activation](inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    head = nn.Sequential(*layers)
    head.out_features = width
    return head
