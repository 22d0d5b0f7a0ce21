"""The trainer layer's seams: provider / head / base trainer (tiny random CLIP, Toy, CPU).

* the worked example of docs/ARCHITECTURE.md (CoOp plus one loss term) runs as written;
* a head with parameters trains with the prompt learner, with its own learning rate under
  OPTIM.STAGED_LR, and is checkpointed and resumed as ``head``;
* the one optimiser step refuses a non-finite loss, naming epoch, batch and term;
* replace-style prompts given by a provider (VPT-deep) give the same logits as the same tensors
  given as key/value prompts (the identity of clip/model.py, through the whole model);
(label spaces over several datasets: tests/trainers/test_multi_dataset.py)
"""
import os
import re
import sys
import types

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import clip
from clip.model import BlockPrompt
from dassl.engine import TRAINER_REGISTRY
from trainers.coop import CoOp, CustomCLIP
from trainers.heads import ClassificationHead
from trainers.model import PromptedCLIP, PromptProvider

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FP32 = ("TRAINER.COOP.PREC", "fp32")


# ---------------------------------------------------------------------------
# The worked example, executed from the docs
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example_module():
    text = open(os.path.join(REPO_ROOT, "docs", "ARCHITECTURE.md")).read()
    section = text[text.index("### Worked example"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 25 <= len(code.strip().splitlines()) <= 45  # "about 30 lines"
    name = "trainers.coop_anchor_example"  # under trainers.: extend_cfg collects its OPTIONS
    module = types.ModuleType(name)
    sys.modules[name] = module
    if "CoOpAnchor" in TRAINER_REGISTRY:
        del TRAINER_REGISTRY._obj_map["CoOpAnchor"]
    exec(compile(code, "docs/ARCHITECTURE.md", "exec"), module.__dict__)
    yield module
    del sys.modules[name]  # later configs must not see the example's section


def test_worked_example_trains_with_its_extra_loss_term(example_module, make_trainer):
    trainer = make_trainer("CoOpAnchor", *FP32, "TRAINER.COOPANCHOR.WEIGHT", "3.0", "TRAINER.COOP.N_CTX", "4")
    head = trainer.model.head
    assert isinstance(head, example_module.AnchorHead) and head.weights == {"ce": 1.0, "anchor": 3.0}

    batch = next(iter(trainer.train_loader_x))
    image, label = trainer.parse_batch_train(batch)
    # the terms by hand, from the model's own features, before the step moves the context
    reference = clip.build_model(clip.load_state_dict(trainer.cfg.MODEL.BACKBONE.PATH)).float()
    names = [n.replace("_", " ") for n in trainer.dm.dataset.classnames]
    with torch.no_grad():
        anchor = reference.encode_text(clip.tokenize([f"a photo of a {n}." for n in names]))
        anchor = anchor / anchor.norm(dim=-1, keepdim=True)
        features = trainer.model.forward_features(image)
        expected_anchor = 1.0 - (features.text * anchor).sum(-1).mean()
        expected_ce = F.cross_entropy(head.logits(features), label)
    trainer.batch_idx, trainer.num_batches = 0, 10
    ctx_before = trainer.model.prompt_learner.ctx.detach().clone()
    summary = trainer.forward_backward(batch)
    assert summary["loss_anchor"] == pytest.approx(expected_anchor.item(), abs=1e-5)
    assert summary["loss_ce"] == pytest.approx(expected_ce.item(), abs=1e-5)
    assert summary["loss"] == pytest.approx(summary["loss_ce"] + 3.0 * summary["loss_anchor"], abs=1e-5)
    assert not torch.equal(trainer.model.prompt_learner.ctx, ctx_before)


def test_worked_example_runs_from_the_command_line(example_module, run_train, make_argv, tmp_path):
    out = tmp_path / "anchor"
    run_train(make_argv("CoOpAnchor", *FP32, output_dir=out))
    log = (out / "log.txt").read_text()
    assert "loss_anchor" in log and "* accuracy:" in log
    assert (out / "prompt_learner" / "model.pth.tar-1").is_file()


# ---------------------------------------------------------------------------
# A head with parameters
# ---------------------------------------------------------------------------
class LearnedScaleHead(ClassificationHead):
    """Test-only: one learnable temperature shift on top of CLIP's."""

    def __init__(self):
        super().__init__()
        self.log_scale_shift = nn.Parameter(torch.zeros(()))

    def logits(self, features):
        return super().logits(features) * self.log_scale_shift.exp()


@TRAINER_REGISTRY.register()
class CoOpLearnedScaleTestOnly(CoOp):
    def build_custom_clip(self, cfg, classnames, clip_model):
        model = CustomCLIP(cfg, classnames, clip_model)
        model.head = LearnedScaleHead()
        return model


def test_a_head_with_parameters_trains_with_its_own_staged_learning_rate(make_trainer, tmp_path):
    trainer = make_trainer("CoOpLearnedScaleTestOnly", *FP32, "OPTIM.LR", "0.01", "OPTIM.STAGED_LR", "True",
                           "OPTIM.NEW_LAYERS", "['head']", "OPTIM.BASE_LR_MULT", "0.1", "OPTIM.WARMUP_EPOCH", "0",
                           output_dir=tmp_path / "staged")
    groups = trainer.optim.param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.01])
    assert groups[1]["params"] == [trainer.model.head.log_scale_shift]
    assert trainer.get_model_names() == ["prompt_learner", "head"]
    shift_before = trainer.model.head.log_scale_shift.item()
    trainer.train()
    assert trainer.model.head.log_scale_shift.item() != shift_before
    checkpoint = tmp_path / "staged" / "head" / "model.pth.tar-1"
    assert torch.load(checkpoint, weights_only=True)["state_dict"]["log_scale_shift"] == trainer.model.head.log_scale_shift

    fresh = make_trainer("CoOpLearnedScaleTestOnly", *FP32, output_dir=tmp_path / "fresh")
    fresh.load_model(str(tmp_path / "staged"), epoch=1)
    assert fresh.model.head.log_scale_shift.item() == trainer.model.head.log_scale_shift.item()
    assert torch.equal(fresh.model.prompt_learner.ctx, trainer.model.prompt_learner.ctx)

    with pytest.raises(ValueError, match=r"OPTIM.NEW_LAYERS names \['classifier'\].*\['prompt_learner', 'head'\]"):
        make_trainer("CoOpLearnedScaleTestOnly", *FP32, "OPTIM.STAGED_LR", "True", "OPTIM.NEW_LAYERS", "['classifier']")


def test_without_a_learning_head_only_the_prompt_learner_is_registered(make_trainer):
    trainer = make_trainer("CoOp", *FP32)
    assert trainer.get_model_names() == ["prompt_learner"]
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable == ["prompt_learner.ctx"]


def test_a_non_finite_loss_names_epoch_batch_and_term(make_trainer):
    trainer = make_trainer("CoOp", *FP32)
    with torch.no_grad():
        trainer.model.prompt_learner.ctx.fill_(float("nan"))
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 2, 4, 10
    with pytest.raises(FloatingPointError, match=r"at epoch 3, batch 5; non-finite term\(s\): \['ce'\].*OPTIM.LR"):
        trainer.forward_backward(next(iter(trainer.train_loader_x)))


# ---------------------------------------------------------------------------
# Replace-style prompts through a provider
# ---------------------------------------------------------------------------
class VPTDeepProvider(PromptProvider):
    """Test-only: VPT-deep tokens (appended before ln_pre, replaced before every later block)."""

    def __init__(self, text, token_ids, tokens, as_kv_of=None):
        super().__init__()
        self.text, self.token_ids, self.tokens = text, token_ids, tokens  # tokens: (blocks, n, width)
        self.visual = as_kv_of  # set: give the same tensors as key/value prompts instead

    def text_input(self, image_features=None):
        return self.text, self.token_ids

    def image_extra_tokens(self, dtype):
        return None if self.visual is not None else self.tokens[0]

    def image_prompts(self, dtype):
        if self.visual is not None:  # block 0's slots held ln_pre(P_0); the others P_l
            return [self.visual.ln_pre(self.tokens[0])] + list(self.tokens[1:])
        return [None] + [BlockPrompt(tokens=t) for t in self.tokens[1:]]


def test_vpt_deep_provider_equals_the_key_value_form_through_the_model():
    clip_model = clip.tiny.build_random_clip("ViT", seed=1, vision_layers=3).float()
    token_ids = clip.tokenize(["a photo of a cat.", "a photo of a dog."])
    text = clip_model.token_embedding(token_ids).detach()
    tokens = torch.randn(3, 2, clip_model.visual.conv1.weight.shape[0])
    images = torch.randn(2, 3, 32, 32)
    replace = PromptedCLIP(clip_model, VPTDeepProvider(text, token_ids, tokens))
    kv = PromptedCLIP(clip_model, VPTDeepProvider(text, token_ids, tokens, as_kv_of=clip_model.visual))
    plain = PromptedCLIP(clip_model, VPTDeepProvider(text, token_ids, tokens * 0, as_kv_of=None))
    with torch.no_grad():
        torch.testing.assert_close(replace(images), kv(images), rtol=1e-5, atol=1e-5)
        assert (replace(images) - plain(images)).abs().max() > 1e-3  # the tokens matter


def test_the_amp_gradient_scaler_is_checkpointed_and_restored(make_trainer, tmp_path):
    """The base trainer saves its GradScaler beside the prompt learner (a resumed amp run keeps its
    loss scale); on CPU amp falls back to fp32, so a CPU scaler stands in for the CUDA one."""
    import torch

    trainer = make_trainer("CoOp", "TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", "4")
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1234.0)
    trainer.save_model(0, str(tmp_path))
    saved = torch.load(tmp_path / "prompt_learner" / "model.pth.tar-1", weights_only=True)
    assert saved["grad_scaler"]["scale"] == 1234.0

    resumed = make_trainer("CoOp", "TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", "4")
    resumed.scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    assert resumed.resume_model_if_exist(str(tmp_path)) == 1
    assert resumed.scaler.get_scale() == 1234.0
