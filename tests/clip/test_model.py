"""CLIP-level prompt plumbing and precisions on the tiny model."""
import pytest
import torch

import clip
from clip.tiny import build_random_clip


@pytest.fixture(scope="module")
def vit():
    return build_random_clip("ViT")


@pytest.fixture(scope="module")
def inputs():
    return torch.randn(2, 3, 32, 32), clip.tokenize(["a photo of a cat.", "a dog"])


def test_empty_prompts_equal_plain_encoders(vit, inputs):
    images, text = inputs
    none = [None] * 2
    empty = [torch.empty(0, 128)] * 2
    torch.testing.assert_close(vit.encode_image(images, none), vit.encode_image(images), atol=0, rtol=0)
    torch.testing.assert_close(vit.encode_text(text, empty), vit.encode_text(text), atol=0, rtol=0)


def test_prompts_change_both_encoders(vit, inputs):
    images, text = inputs
    prompts = [torch.randn(3, 128), torch.randn(1, 128)]
    assert not torch.allclose(vit.encode_image(images, prompts), vit.encode_image(images), atol=1e-4)
    assert not torch.allclose(vit.encode_text(text, prompts), vit.encode_text(text), atol=1e-4)


def test_short_text_uses_a_slice_of_the_mask(vit, inputs):
    _, text = inputs
    short = text[:, :8]  # both end tokens are within the first 8 positions
    torch.testing.assert_close(vit.encode_text(short), vit.encode_text(text), atol=1e-5, rtol=1e-5)


def test_resnet_refuses_prompts():
    model = build_random_clip("RN")
    with pytest.raises(ValueError, match="ViT"):
        model.encode_image(torch.randn(1, 3, 64, 64), [None])


def test_autocast_and_bfloat16_model(vit, inputs):
    images, text = inputs
    prompts = [torch.randn(2, 128), torch.randn(2, 128)]
    expected_text, expected_image = vit.encode_text(text, prompts), vit.encode_image(images, prompts)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_text, out_image = vit.encode_text(text, prompts), vit.encode_image(images, prompts)
    low = build_random_clip("ViT").to(torch.bfloat16)  # the same seed: the same weights
    for got in (out_text, low.encode_text(text, prompts)):
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.float(), expected_text, atol=0.1, rtol=0.05)
    for got in (out_image, low.encode_image(images, prompts)):
        torch.testing.assert_close(got.float(), expected_image, atol=0.1, rtol=0.05)


def test_fp16_model_takes_fp32_prompts():
    model = clip.build_model(build_random_clip("ViT").state_dict())  # fp16 matmul weights
    block = model.transformer.resblocks[0]
    k, v = block.project_prompt_kv(torch.randn(2, 128))
    assert k.dtype == v.dtype == torch.float16 and k.shape == (1, 2, 2, 64)
