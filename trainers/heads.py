"""Heads: features -> logits and a dict of named loss terms.

A head is an ``nn.Module`` with
  * ``wants``: names of extra features ``PromptedCLIP.forward_features`` must compute in training
    (e.g. ``"zeroshot_image"``),
  * ``logits(features)`` -> (batch, n_cls) float32,
  * ``losses(features, logits, label)`` -> ``{"ce": ..., "kd": ...}`` (unweighted terms),
  * ``weights``: ``{term: weight}``; the trained loss is ``sum(weights[t] * losses[t])``, and the
    base trainer logs every term as ``loss_<term>`` beside the total ``loss``.
A head with parameters is trained with the prompt learner (``OPTIM.STAGED_LR`` with
``OPTIM.NEW_LAYERS ["head"]`` gives it its own learning rate) and checkpointed as ``head``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ClassificationHead(nn.Module):
    """CLIP's classifier: logit_scale x cosine(image, class text), cross-entropy."""

    wants = ()

    def __init__(self):
        super().__init__()
        self.weights = {"ce": 1.0}

    def logits(self, features):
        image, text = features.image.float(), features.text.float()
        scale = features.logit_scale.float()
        if text.dim() == 3:  # a text classifier per image: (batch, n_cls, embed)
            return scale * torch.einsum("bd,bcd->bc", image, text)
        return scale * image @ text.t()

    def losses(self, features, logits, label):
        return {"ce": F.cross_entropy(logits, label)}


def distillation_loss(student_logits, teacher_logits, temperature):
    """KL(teacher || student) at ``temperature``, summed and divided by (batch x classes).

    Multiplied by T^2 (the usual gradient-scale correction; 1 at the release's T = 1).
    """
    log_student = F.log_softmax(student_logits / temperature, dim=-1)
    teacher = F.softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(log_student, teacher, reduction="sum") / student_logits.numel()
    return kl * temperature * temperature


class DistillationHead(ClassificationHead):
    """Cross-entropy plus KD from zero-shot CLIP (DPL's subnet): the teacher is the same frozen
    encoders without prompts, with class features given once (``teacher_text_features``)."""

    wants = ("zeroshot_image",)

    def __init__(self, teacher_text_features, weight, temperature):
        super().__init__()
        # Derived from the class names: not saved in checkpoints.
        self.register_buffer("teacher_text_features", teacher_text_features, persistent=False)
        self.temperature = float(temperature)
        self.weights = {"ce": 1.0, "kd": float(weight)}

    def losses(self, features, logits, label):
        scale = features.logit_scale.float()
        teacher = scale * features.extras["zeroshot_image"].float() @ self.teacher_text_features.float().t()
        return {
            "ce": F.cross_entropy(logits, label),
            "kd": distillation_loss(logits, teacher, self.temperature),
        }
