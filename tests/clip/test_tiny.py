"""Tiny random checkpoints: cheap, deterministic, sane, and shaped like OpenAI's."""

import pytest
import torch

import clip
from clip.tiny import VIT_B16_SIZES, build_random_clip, tiny_state_dict, vit_b16_state_dict


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
