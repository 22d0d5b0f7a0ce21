"""A tiny trainer for engine tests: a linear classifier on raw pixels, registered as "EngineTestLinear"
(a name no method will take: the linear-probe baseline is to be registered as "LinearProbe").

Importing this module registers it; import it under this one name only.
"""

import torch.nn as nn
import torch.nn.functional as F

from dassl.engine import TRAINER_REGISTRY, TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer

MODEL_NAME = "linear_probe"


@TRAINER_REGISTRY.register()
class EngineTestLinear(TrainerX):
    def build_model(self):
        cfg = self.cfg
        height, width = cfg.INPUT.SIZE
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(3 * height * width, self.num_classes))
        self.model.to(self.device)
        self.optim = build_optimizer(self.model, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model(MODEL_NAME, self.model, self.optim, self.sched)
        self.loss_history = []  # one entry per training batch

    def forward_backward(self, batch):
        image, label, _domain = self.parse_batch_train(batch)
        output = self.model(image)  # (batch, classes)
        loss = F.cross_entropy(output, label)
        self.model_backward_and_update(loss)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        self.loss_history.append(loss.item())
        return {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}
