"""Small helpers used by semi-supervised / EMA-style trainers."""

import numpy as np
import torch

__all__ = ["sharpen_prob", "create_onehot", "sigmoid_rampup", "linear_rampup", "ema_model_update"]


def sharpen_prob(p, temperature=2):
    """``p ** temperature`` renormalised over dim 1; ``p`` is ``(batch, classes)``."""
    p = p.pow(temperature)
    return p / p.sum(1, keepdim=True)


def create_onehot(label, num_classes):
    """Float one-hot ``(batch, num_classes)`` on the label's device."""
    onehot = torch.zeros(label.shape[0], num_classes, device=label.device)
    return onehot.scatter(1, label.unsqueeze(1), 1)


def sigmoid_rampup(current, rampup_length):
    """exp(-5 (1 - t)^2) with t = current / rampup_length clipped to [0, 1]."""
    assert rampup_length > 0
    t = np.clip(current, 0.0, rampup_length) / rampup_length
    return float(np.exp(-5.0 * (1.0 - t) ** 2))


def linear_rampup(current, rampup_length):
    assert rampup_length > 0
    return float(np.clip(current / rampup_length, 0.0, 1.0))


@torch.no_grad()
def ema_model_update(model, ema_model, alpha):
    """In place: ema = alpha * ema + (1 - alpha) * param, parameter by parameter."""
    for ema_param, param in zip(ema_model.parameters(), model.parameters()):
        ema_param.mul_(alpha).add_(param, alpha=1 - alpha)
