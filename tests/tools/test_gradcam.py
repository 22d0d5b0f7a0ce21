"""tools/gradcam.py: Grad-CAM on a tiny ViT CLIP follows a planted patch; the CLI on real tiny runs."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from clip.tiny import build_random_clip
from cli_runner import run_train
from tools import gradcam
from trainers.model import PromptedCLIP, PromptProvider

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_YAML = os.path.join(REPO_ROOT, "configs", "datasets", "toy.yaml")
PATCH = 8  # the tiny ViT: 32 x 32 images, 8 x 8 patches, a 4 x 4 grid


class FixedText(PromptProvider):
    def __init__(self, text_features):
        super().__init__()
        self.register_buffer("text_features", text_features)

    def class_text_features(self, model, image_features):
        return self.text_features


def directions(width, count, seed=0):
    """``count`` orthogonal vectors of zero mean and unit variance (LayerNorm leaves them as they are)."""
    generator = torch.Generator().manual_seed(seed)
    basis = torch.cat([torch.ones(width, 1), torch.randn(width, count, generator=generator)], dim=1)
    q, _ = torch.linalg.qr(basis)  # column 0 spans the ones: the others have zero mean
    return [q[:, i + 1] * width ** 0.5 for i in range(count)]


def planted_patch_clip():
    """A tiny ViT CLIP in which one red patch drives class 0's logit.

    Patch embedding: red -> direction e, green -> b (background); the class token is c0; no positional
    embedding. Block 0 is the identity; block 1 attends uniformly (q = k = 0) and its values read the
    e-component of each token and write it along f: the class token becomes c0 + 2 f when a red patch
    is present, and stays c0 otherwise. Class 0's text feature is the image feature of a strongly red input, class
    1's that of a green-only image.
    """
    model = build_random_clip("ViT", seed=0)
    visual = model.visual
    width = visual.conv1.weight.shape[0]
    e, b, c0, f = directions(width, 4)
    with torch.no_grad():
        visual.conv1.weight.zero_()
        visual.conv1.weight[:, 0] = e[:, None, None] / PATCH ** 2
        visual.conv1.weight[:, 1] = b[:, None, None] / PATCH ** 2
        visual.class_embedding.copy_(c0)
        visual.positional_embedding.zero_()
        first, last = visual.transformer.resblocks
        for block in (first, last):
            block.mlp.c_proj.weight.zero_()
            block.mlp.c_proj.bias.zero_()
        first.attn.out_proj.weight.zero_()
        first.attn.out_proj.bias.zero_()
        last.attn.in_proj_weight.zero_()
        last.attn.in_proj_bias.zero_()
        n_tokens = visual.positional_embedding.shape[0]
        last.attn.in_proj_weight[2 * width:] = 2 * n_tokens * torch.outer(f, e / e.norm() ** 2)
        last.attn.out_proj.weight.copy_(torch.eye(width))
        last.attn.out_proj.bias.zero_()

        def feature(cls_token):
            return visual.ln_post(cls_token[None]) @ visual.proj

        text = torch.cat([feature(c0 + 3 * f), feature(c0)])
    prompted = PromptedCLIP(model, FixedText(text / text.norm(dim=-1, keepdim=True)))
    return prompted.requires_grad_(False).eval()


def image_with_red_patch(row, col):
    image = torch.zeros(3, 32, 32)
    image[1] = 1.0  # green background
    image[:, row * PATCH:(row + 1) * PATCH, col * PATCH:(col + 1) * PATCH] = torch.tensor([1.0, 0, 0])[:, None, None]
    return image


def test_the_map_has_the_patch_grid_and_peaks_at_the_planted_patch():
    model = planted_patch_clip()
    places = [(0, 1), (2, 3), (3, 0)]
    images = torch.stack([image_with_red_patch(r, c) for r, c in places])
    maps, logits = gradcam.grad_cam(model, model.image_encoder, images, [0] * len(places))
    assert maps.shape == (len(places), 4, 4)
    assert (logits[:, 0] > logits[:, 1]).all()  # the red patch makes class 0 win
    for (row, col), cam in zip(places, maps):
        assert np.unravel_index(cam.argmax(), cam.shape) == (row, col)
        others = np.delete(cam.ravel(), row * 4 + col)
        assert cam[row, col] > 0 and np.abs(others).max() < 1e-3 * cam[row, col]
    # same image, the same map whatever else is in the batch
    alone, _ = gradcam.grad_cam(model, model.image_encoder, images[1:2], [0])
    np.testing.assert_allclose(alone[0], maps[1], rtol=1e-4, atol=1e-6)
    # no red patch: nothing drives class 0, the map is empty
    background, _ = gradcam.grad_cam(model, model.image_encoder, image_with_red_patch(0, 0)[None] * 0, [0])
    assert np.abs(background).max() < 1e-6


def test_layers_are_checked_and_upsampling_keeps_the_peak():
    model = planted_patch_clip()
    image = image_with_red_patch(1, 2)[None]
    first, _ = gradcam.grad_cam(model, model.image_encoder, image, [0], layer=0)
    assert first.shape == (1, 4, 4)
    with pytest.raises(ValueError, match=r"--layer 2 is out of range: the image tower has 2 blocks"):
        gradcam.grad_cam(model, model.image_encoder, image, [0], layer=2)
    maps, _ = gradcam.grad_cam(model, model.image_encoder, image, [0])
    up = gradcam.upsample(maps, (32, 32))
    assert up.shape == (1, 32, 32) and up.max() == pytest.approx(1.0)
    row, col = np.unravel_index(up[0].argmax(), (32, 32))
    assert (row // PATCH, col // PATCH) == (1, 2)
    resnet = build_random_clip("RN")
    with pytest.raises(ValueError, match="needs a ViT image tower"):
        gradcam.vit_block(resnet.visual, -1)


def test_an_unknown_class_names_close_ones():
    names = ["red circle", "green square", "blue triangle"]
    assert gradcam.resolve_class("Green_Square", names) == 1
    with pytest.raises(KeyError, match=r"(?s)'red circel' is not a class.*Close names: \['red circle'\]"):
        gradcam.resolve_class("red circel", names)


# ---------------------------------------------------------------------------- the program


FAST = ["INPUT.SIZE", "(32, 32)", "INPUT.TRANSFORMS", "['normalize']", "DATALOADER.NUM_WORKERS", "0",
        "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", "1",
        "TRAIN.PRINT_FREQ", "1000", "USE_CUDA", "False"]


@pytest.mark.slow
def test_cli_grid_of_a_trained_run_and_zero_shot(tmp_path):
    from clip.tiny import save_tiny_clip

    clip_path = save_tiny_clip(str(tmp_path / "tiny.pt"))
    run_dir = tmp_path / "out" / "CoOp" / "seed1"
    run_train(["--root", tmp_path / "data", "--trainer", "CoOp", "--seed", "1", "--dataset-config-file", TOY_YAML,
               "--output-dir", run_dir, *FAST, "MODEL.BACKBONE.PATH", clip_path, "TRAINER.COOP.N_CTX", "2"])
    out = tmp_path / "figs" / "gradcam.png"
    assert gradcam.main(["--run", f"CoOp={run_dir}", "--zeroshot", "--images", "test", "--num-images", "3",
                         "--out", str(out)]) == 0
    with Image.open(out) as grid:
        width, height = grid.size
    maps = np.load(tmp_path / "figs" / "gradcam.npz")
    assert maps["maps"].shape == (2, 3, 4, 4) and list(maps["methods"]) == ["CoOp", "zero-shot CLIP"]
    assert maps["upsampled"].shape == (2, 3, 32, 32)
    assert list(maps["class_index"]) == list(maps["labels"])  # without --class: each image's label
    assert not np.array_equal(maps["maps"][0], maps["maps"][1])  # the learned prompts change the map
    assert width > height  # 3 rows, 3 columns plus titles and labels

    # image files and a chosen class; one column fewer, one row fewer
    image = str(maps["impaths"][0])
    assert gradcam.main(["--run", f"CoOp={run_dir}", "--images", image, image, "--class", "blue triangle",
                         "--out", str(tmp_path / "two.png")]) == 0
    two = np.load(tmp_path / "two.npz")
    assert two["maps"].shape == (1, 2, 4, 4) and set(two["class_index"]) == {2}

    with pytest.raises(SystemExit):
        gradcam.get_parser().parse_args(["--run", f"CoOp={run_dir}"])  # --out is required
    assert gradcam.main(["--run", f"CoOp={run_dir}", "--class", "blue triangel", "--out", str(tmp_path / "x.png")]) == 2
    assert not (tmp_path / "x.png").exists()


def test_cli_bad_class_message(tmp_path, capsys):
    from clip.tiny import save_tiny_clip

    clip_path = save_tiny_clip(str(tmp_path / "tiny.pt"))
    code = gradcam.main(["--zeroshot", "--root", str(tmp_path / "data"), "--dataset-config-file", TOY_YAML,
                         "--class", "blu triangle", "--out", str(tmp_path / "g.png"), *FAST,
                         "MODEL.BACKBONE.PATH", clip_path])
    assert code == 2
    err = capsys.readouterr().err
    assert "'blu triangle' is not a class of this dataset (4 classes)" in err and "'blue triangle'" in err
    assert "Expected one of: ['red circle', 'green square', 'blue triangle', 'yellow cross']" in err
    assert not (tmp_path / "g.png").exists()
