"""Tiny random checkpoints: cheap, deterministic, sane, and shaped like OpenAI's; `python -m clip.tiny`."""

import os
import subprocess
import sys

import pytest
import torch

import clip
from clip.tiny import VIT_B16_SIZES, build_random_clip, tiny_state_dict, vit_b16_state_dict

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = tiny_state_dict("ViT", seed=5)
    after = torch.rand(1)
    assert torch.equal(before, after)
    b, c = tiny_state_dict("ViT", seed=5), tiny_state_dict("ViT", seed=6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["visual.proj"], c["visual.proj"])


@pytest.mark.parametrize("arch", ["ViT", "RN"])
def test_activations_are_sane(arch):
    model = build_random_clip(arch)
    res = model.visual.input_resolution
    with torch.no_grad():
        image_features = model.encode_image(torch.randn(4, 3, res, res))
        text_features = model.encode_text(clip.tokenize(["a photo of a cat.", "a dog", "x", "a b c d"]))
    for features in (image_features, text_features):
        assert features.shape == (4, 32) and torch.isfinite(features).all()
        assert 1e-3 < features.std().item() < 1e2
    # different inputs give different features
    assert not torch.allclose(text_features[0], text_features[1], atol=1e-4)


def test_unknown_size_names_are_rejected():
    with pytest.raises(ValueError, match="unknown size names"):
        tiny_state_dict("ViT", vision_heads=3)
    with pytest.raises(ValueError, match="multiple of 64"):
        tiny_state_dict("ViT", transformer_width=96)
    with pytest.raises(ValueError, match="arch must be"):
        tiny_state_dict("ConvNeXt")


@pytest.mark.slow
def test_vit_b16_shapes_build_the_real_architecture():
    state_dict = vit_b16_state_dict()
    assert state_dict["visual.conv1.weight"].shape == (768, 3, 16, 16)
    assert state_dict["visual.positional_embedding"].shape == (197, 768)
    assert state_dict["token_embedding.weight"].shape == (49408, 512)
    assert state_dict["text_projection"].shape == (512, 512)
    model = clip.build_model(state_dict)
    assert model.visual.input_resolution == VIT_B16_SIZES["image_resolution"]
    assert len(model.visual.transformer.resblocks) == 12 and model.visual.transformer.resblocks[0].n_head == 12
    assert model.transformer.layers == 12 and model.transformer.resblocks[0].n_head == 8
    n_params = sum(p.numel() for p in model.parameters())
    assert 149e6 < n_params < 151e6  # ViT-B/16 CLIP has about 149.6M parameters


@pytest.mark.parametrize("arch,fmt", [("vit", "torchscript"), ("rn", "state_dict")])
def test_command_line_writes_a_checkpoint_clip_load_reads(tmp_path, arch, fmt, capsys):
    from clip.tiny import main

    out = tmp_path / "sub" / f"tiny_{arch}.pt"
    assert main([str(out), "--arch", arch.upper() if arch == "rn" else arch, "--format", fmt, "--seed", "3"]) == 0
    assert str(out) in capsys.readouterr().out and os.listdir(tmp_path / "sub") == [out.name]  # no temp file left
    expected = tiny_state_dict("ViT" if arch == "vit" else "RN", seed=3)
    loaded = clip.load_state_dict(str(out))  # OpenAI's key names, the weights of that seed
    assert sorted(loaded) == sorted(expected) and all(torch.equal(loaded[k], expected[k]) for k in expected)
    model, _ = clip.load(str(out), device="cpu")  # and the model builds from it
    assert model.visual.input_resolution == (32 if arch == "vit" else 64)


def test_command_line_size_overrides_and_errors(tmp_path, capsys):
    from clip.tiny import main

    out = tmp_path / "deeper.pt"
    main([str(out), "--format", "state_dict", "--set", "vision_layers=3", "--set", "transformer_layers=1"])
    model = clip.build_model(torch.load(out, weights_only=True))
    assert len(model.visual.transformer.resblocks) == 3 and model.transformer.layers == 1
    for bad, message in ((["--set", "vision_heads=2"], "unknown size names"), (["--set", "vision_layers"], "NAME=VALUE"),
                         (["--arch", "rn", "--size", "vit-b16"], "needs --arch vit")):
        with pytest.raises(SystemExit) as exit_info:
            main([str(tmp_path / "bad.pt"), *bad])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.slow
def test_python_dash_m_clip_tiny(tmp_path):
    out = tmp_path / "tiny.pt"
    subprocess.run([sys.executable, "-m", "clip.tiny", str(out), "--arch", "vit"], cwd=REPO_ROOT, check=True,
                   capture_output=True, text=True)
    model, _ = clip.load(str(out), device="cpu")
    assert model.visual.input_resolution == 32
