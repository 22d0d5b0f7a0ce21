"""``build_optimizer(model, cfg.OPTIM, param_groups=None)``."""

import warnings

import torch
import torch.nn as nn

__all__ = ["AVAI_OPTIMS", "build_optimizer"]

AVAI_OPTIMS = ["adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"]


def build_optimizer(model, optim_cfg, param_groups=None):
    """An optimizer over ``param_groups``, or ``model``'s parameters (all of them, frozen included).

    ``model`` may be an ``nn.Module`` or an iterable of tensors / param-group dicts.
    With ``OPTIM.STAGED_LR``, direct children named in ``NEW_LAYERS`` get ``LR`` and the
    other children ``LR * BASE_LR_MULT`` (parameters owned by ``model`` itself are skipped, as in Dassl).
    """
    optim = optim_cfg.NAME
    lr = optim_cfg.LR
    weight_decay = optim_cfg.WEIGHT_DECAY
    betas = (optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2)

    if optim not in AVAI_OPTIMS:
        raise ValueError("optim must be one of {}, but got {}".format(AVAI_OPTIMS, optim))

    if param_groups is not None and optim_cfg.STAGED_LR:
        warnings.warn("OPTIM.STAGED_LR is ignored because param_groups were given to build_optimizer()")

    if param_groups is None:
        if optim_cfg.STAGED_LR:
            param_groups = _staged_param_groups(model, optim_cfg)
        elif isinstance(model, nn.Module):
            param_groups = model.parameters()
        else:
            param_groups = model

    if optim == "adam":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
    if optim == "amsgrad":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas, amsgrad=True)
    if optim == "sgd":
        return torch.optim.SGD(
            param_groups,
            lr=lr,
            momentum=optim_cfg.MOMENTUM,
            weight_decay=weight_decay,
            dampening=optim_cfg.SGD_DAMPNING,
            nesterov=optim_cfg.SGD_NESTEROV,
        )
    if optim == "rmsprop":
        return torch.optim.RMSprop(
            param_groups, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=weight_decay,
            alpha=optim_cfg.RMSPROP_ALPHA,
        )
    if optim == "radam":
        # torch's RAdam replaces Dassl's own copy (same algorithm; tiny numeric differences)
        return torch.optim.RAdam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)


def _staged_param_groups(model, optim_cfg):
    if not isinstance(model, nn.Module):
        raise TypeError("When OPTIM.STAGED_LR is True, the model given to build_optimizer() must be an nn.Module")
    if isinstance(model, nn.DataParallel):
        model = model.module
    new_layers = optim_cfg.NEW_LAYERS
    if isinstance(new_layers, str):
        new_layers = [new_layers]
    if not new_layers:
        warnings.warn("OPTIM.STAGED_LR is True but OPTIM.NEW_LAYERS is empty: every layer gets the base LR")
    base_params, new_params = [], []
    for name, module in model.named_children():
        if name in new_layers:
            new_params += list(module.parameters())
        else:
            base_params += list(module.parameters())
    return [
        {"params": base_params, "lr": optim_cfg.LR * optim_cfg.BASE_LR_MULT},
        {"params": new_params},
    ]
