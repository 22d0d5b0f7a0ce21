"""``build_lr_scheduler``: step / multi-step / cosine, optionally behind a warmup.

Schedulers are stepped once per epoch. The warmup wrappers follow Dassl 0.6.3's LR
sequence exactly, but (unlike Dassl) they never pass ``verbose`` to torch, their
``state_dict()`` holds only plain data (the successor's state is nested as a dict), and
``load_state_dict()`` restores into the live successor, so a resumed run keeps changing LR.
"""

from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR, StepLR

__all__ = ["AVAI_SCHEDS", "ConstantWarmupScheduler", "LinearWarmupScheduler", "build_lr_scheduler"]

AVAI_SCHEDS = ["single_step", "multi_step", "cosine"]


class _BaseWarmupScheduler(LRScheduler):
    """Runs ``warmup_epoch`` warmup epochs, then forwards every ``step()`` to ``successor``.

    ``last_epoch`` counts warmup steps (construction is step 0) and stops at ``warmup_epoch``.
    At epoch ``warmup_epoch`` the LR is the successor's last LR (the base LR).
    """

    def __init__(self, optimizer, successor, warmup_epoch, last_epoch=-1):
        # torch's LRScheduler.__init__ is not called: its bookkeeping (step patching,
        # initial step) would fight with the successor, which owns the real schedule.
        self.optimizer = optimizer
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        self.base_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def warmup_lr(self, base_lr):
        raise NotImplementedError

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return list(self.successor.get_last_lr())
        return [self.warmup_lr(base_lr) for base_lr in self.base_lrs]

    def step(self, epoch=None):
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step()
            self._last_lr = list(self.successor.get_last_lr())
            return
        self.last_epoch += 1
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def get_last_lr(self):
        return self._last_lr

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "successor")}
        state["successor"] = self.successor.state_dict()
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        successor_state = state.pop("successor", None)
        if isinstance(successor_state, LRScheduler):
            # Stock Dassl pickled the successor object itself; take its plain state.
            successor_state = successor_state.state_dict()
        for key in ("optimizer", "verbose", "_step_count", "_get_lr_called_within_step"):
            state.pop(key, None)
        self.__dict__.update(state)
        if successor_state is not None:
            self.successor.load_state_dict(successor_state)


class ConstantWarmupScheduler(_BaseWarmupScheduler):
    """LR = ``cons_lr`` during the warmup epochs."""

    def __init__(self, optimizer, successor, warmup_epoch, cons_lr, last_epoch=-1):
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def warmup_lr(self, base_lr):
        return self.cons_lr


class LinearWarmupScheduler(_BaseWarmupScheduler):
    """LR = ``min_lr`` at epoch 0, then ``base_lr * e / warmup_epoch``."""

    def __init__(self, optimizer, successor, warmup_epoch, min_lr, last_epoch=-1):
        self.min_lr = min_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def warmup_lr(self, base_lr):
        if self.last_epoch == 0:
            return self.min_lr
        return base_lr * self.last_epoch / self.warmup_epoch


def build_lr_scheduler(optimizer, optim_cfg):
    """The scheduler named by ``OPTIM.LR_SCHEDULER``, wrapped in a warmup if ``WARMUP_EPOCH > 0``."""
    lr_scheduler = optim_cfg.LR_SCHEDULER
    stepsize = optim_cfg.STEPSIZE
    gamma = optim_cfg.GAMMA
    max_epoch = optim_cfg.MAX_EPOCH

    if lr_scheduler not in AVAI_SCHEDS:
        raise ValueError("scheduler must be one of {}, but got {}".format(AVAI_SCHEDS, lr_scheduler))

    if lr_scheduler == "single_step":
        if isinstance(stepsize, (list, tuple)):
            stepsize = stepsize[-1]
        if not isinstance(stepsize, int):
            raise TypeError("For single_step lr_scheduler, stepsize must be an integer, but got {}".format(
                type(stepsize)))
        if stepsize <= 0:
            stepsize = max_epoch
        scheduler = StepLR(optimizer, step_size=stepsize, gamma=gamma)
    elif lr_scheduler == "multi_step":
        if not isinstance(stepsize, (list, tuple)):
            raise TypeError("For multi_step lr_scheduler, stepsize must be a list, but got {}".format(type(stepsize)))
        scheduler = MultiStepLR(optimizer, milestones=list(stepsize), gamma=gamma)
    else:
        scheduler = CosineAnnealingLR(optimizer, T_max=float(max_epoch))

    if optim_cfg.WARMUP_EPOCH > 0:
        if not optim_cfg.WARMUP_RECOUNT:
            scheduler.last_epoch = optim_cfg.WARMUP_EPOCH
        if optim_cfg.WARMUP_TYPE == "constant":
            scheduler = ConstantWarmupScheduler(optimizer, scheduler, optim_cfg.WARMUP_EPOCH,
                                                optim_cfg.WARMUP_CONS_LR)
        elif optim_cfg.WARMUP_TYPE == "linear":
            scheduler = LinearWarmupScheduler(optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_MIN_LR)
        else:
            raise ValueError('OPTIM.WARMUP_TYPE must be "constant" or "linear", got "{}"'.format(
                optim_cfg.WARMUP_TYPE))
    return scheduler
