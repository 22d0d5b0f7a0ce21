import json
import os

import numpy as np
import pytest
import torch

from tools import compare_configs
from tools.compare_configs import BACKBONES, Backbone, analyse, backbone_from_state_dict, backbone_from_weights
from trainers.prompt_config import read_prompt_lengths

# widths 4 (image) and 2 (text), 5 image tokens (4 patches of 2x2 + class), context 3, 2 + 2 layers
TINY = Backbone(image_width=4, text_width=2, image_tokens=5, text_tokens=3, image_layers=2, text_layers=2,
                patch_size=2, embed_dim=2)


def test_tiny_config_by_hand():
    result = analyse({"image": [1, 0], "text": [0, 2]}, TINY)
    # parameters: 1 image token x width 4 + 2 text tokens x width 2
    assert result["image"]["parameters"] == 4 and result["text"]["parameters"] == 4 and result["parameters"] == 8
    # image block with k=1, n=5, d=4: K/V projections 2*k*d*d = 32 MACs, extra columns 2*n*k*d = 40 MACs -> 144 FLOPs
    assert result["image"]["extra_flops"] == 2 * (32 + 40)
    # plain image: per block qkv+out 4*n*d^2 = 320, scores and sum 2*n^2*d = 200, MLP 8*n*d^2 = 640 MACs;
    # patch embedding 4 patches x (3*2*2) x 4 = 192 MACs; projection 4*2 = 8 MACs
    plain_image = 2 * (2 * (320 + 200 + 640) + 192 + 8)
    assert result["image"]["plain_flops"] == plain_image
    assert result["image"]["extra_percent"] == pytest.approx(100 * 144 / plain_image)
    # text block with k=2, n=3, d=2: 2*2*2*2 = 16 + 2*3*2*2 = 24 MACs; plain: 2 blocks of
    # (4*3*4 = 48) + (2*9*2 = 36) + (8*3*4 = 96) MACs and projection 2*2 = 4 MACs
    assert result["text"]["extra_flops"] == 2 * (16 + 24)
    assert result["text"]["plain_flops"] == 2 * (2 * (48 + 36 + 96) + 4)
    assert result["text"]["tokens"] == 2 and result["text"]["prompted_blocks"] == 1


def test_vit_b16_plain_cost_is_the_known_17_6_gmacs():
    result = analyse({"image": [0] * 12, "text": [0] * 12}, BACKBONES["ViT-B/16"])
    assert 17.4e9 < result["image"]["plain_flops"] / 2 < 17.7e9
    assert result["image"]["extra_flops"] == 0 and result["parameters"] == 0


def test_depth_mismatch_is_explained():
    with pytest.raises(ValueError, match="12 blocks but the backbone has 24 image layers"):
        analyse({"image": [1] * 12, "text": [1] * 12}, BACKBONES["ViT-L/14"])


def tiny_clip_state_dict():
    """Only the tensors whose shapes describe the architecture."""
    sd = {"visual.conv1.weight": torch.zeros(4, 3, 2, 2), "visual.positional_embedding": torch.zeros(5, 4),
          "visual.proj": torch.zeros(4, 2), "ln_final.weight": torch.zeros(2), "positional_embedding": torch.zeros(3, 2)}
    for i in range(2):
        sd[f"visual.transformer.resblocks.{i}.ln_1.weight"] = torch.zeros(4)
        sd[f"transformer.resblocks.{i}.ln_1.weight"] = torch.zeros(2)
    return sd


def test_backbone_read_off_weights(tmp_path):
    assert backbone_from_state_dict(tiny_clip_state_dict()) == TINY
    path = str(tmp_path / "tiny.pt")
    torch.save({"state_dict": tiny_clip_state_dict()}, path)
    assert backbone_from_weights(path) == TINY
    with pytest.raises(ValueError, match="ViT"):
        backbone_from_state_dict({"visual.attnpool.c_proj.weight": torch.zeros(1)})


def test_configs_from_json_and_from_alpha_files(tmp_path):
    path = tmp_path / "searched_config.json"
    path.write_text(json.dumps({"format": "dpl-prompt-config/1", "image": {"prompt_lengths": [1, 0]},
                                "text": {"prompt_lengths": [0, 2]}}))
    assert read_prompt_lengths(str(path)) == {"image": [1, 0], "text": [0, 2]}
    assert read_prompt_lengths(str(tmp_path)) == {"image": [1, 0], "text": [0, 2]}
    alphas = tmp_path / "alphas_only"
    alphas.mkdir()
    np.save(alphas / "alpha_e1_img.npy", np.array([[0, 9, 0], [9, 0, 0]], dtype="f4"))
    np.save(alphas / "alpha_e1_txt.npy", np.array([[9, 0, 0], [0, 0, 9]], dtype="f4"))
    np.save(alphas / "alpha_e10_img.npy", np.array([[0, 0, 9], [0, 9, 0]], dtype="f4"))  # the last epoch wins
    np.save(alphas / "alpha_e10_txt.npy", np.array([[0, 9, 0], [9, 0, 0]], dtype="f4"))
    assert read_prompt_lengths(str(alphas)) == {"image": [2, 1], "text": [1, 0]}
    with pytest.raises(ValueError, match="prompt_lengths"):
        (tmp_path / "bad.json").write_text('{"image": {}}')
        read_prompt_lengths(str(tmp_path / "bad.json"))


def test_cli_table_and_files(tmp_path, capsys):
    folder = tmp_path / "search" / "eurosat" / "shots_16" / "TrainerSupernet" / "cfg" / "seed2"
    folder.mkdir(parents=True)
    (folder / "searched_config.json").write_text(json.dumps({"image": {"prompt_lengths": [2] * 12},
                                                             "text": {"prompt_lengths": [0] * 11 + [3]}}))
    prefix = str(tmp_path / "cmp")
    assert compare_configs.main([str(folder), "--backbone", "ViT-B/32", "--out", prefix]) == 0
    printed = capsys.readouterr().out
    assert "| eurosat/seed2 | image | 2 2 2 2 2 2 2 2 2 2 2 2 | 24 | 18,432 |" in printed
    assert "| eurosat/seed2 | both | | | **19,968** |" in printed  # 24 x 768 + 3 x 512
    assert "4 k d^2 + 4 n k d" in printed
    with open(prefix + ".json") as f:
        data = json.load(f)
    assert data["dimensions"]["image_tokens"] == 50 and data["configs"][0]["text"]["tokens"] == 3
    assert os.path.isfile(prefix + ".md")


@pytest.mark.parametrize("fmt", ["state_dict", "torchscript"])
def test_backbone_of_a_real_tiny_clip(tmp_path, fmt):
    from clip.tiny import TINY_SIZES, save_tiny_clip

    path = save_tiny_clip(str(tmp_path / "tiny.pt"), "ViT", fmt=fmt)
    sizes = TINY_SIZES["ViT"]
    tokens = 1 + (sizes["image_resolution"] // sizes["vision_patch_size"]) ** 2
    assert backbone_from_weights(path) == Backbone(
        sizes["vision_width"], sizes["transformer_width"], tokens, sizes["context_length"], sizes["vision_layers"],
        sizes["transformer_layers"], sizes["vision_patch_size"], sizes["embed_dim"])
