"""Loading: tiny checkpoints in both file formats, download with checksum, errors for people."""
import hashlib
import io
import os
import urllib.error

import pytest
import torch
from PIL import Image

import clip
from clip import clip as clip_module
from clip.model import ModifiedResNet, VisionTransformer
from clip.tiny import TINY_SIZES, save_tiny_clip, tiny_state_dict


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """The four tiny files, written once: {(arch, fmt): path}."""
    folder = tmp_path_factory.mktemp("tiny")
    paths = {(arch, fmt): save_tiny_clip(str(folder / f"{arch}-{fmt}.pt"), arch=arch, fmt=fmt, seed=3)
             for arch in ("ViT", "RN") for fmt in ("state_dict", "torchscript")}
    assert sorted(os.listdir(folder)) == sorted(os.path.basename(p) for p in paths.values())  # no temp files
    return paths


@pytest.mark.parametrize("arch", ["ViT", "RN"])
@pytest.mark.parametrize("fmt", ["state_dict", "torchscript"])
def test_tiny_checkpoint_loads_with_its_architecture(checkpoints, arch, fmt):
    model, preprocess = clip.load(checkpoints[arch, fmt], device="cpu")
    sizes = TINY_SIZES[arch]
    assert model.dtype == torch.float32 and not model.training
    assert model.visual.input_resolution == sizes["image_resolution"]
    assert model.transformer.layers == sizes["transformer_layers"]
    assert model.transformer.resblocks[0].n_head == sizes["transformer_width"] // 64
    if arch == "ViT":
        assert isinstance(model.visual, VisionTransformer)
        assert len(model.visual.transformer.resblocks) == sizes["vision_layers"]
        assert model.visual.conv1.kernel_size == (sizes["vision_patch_size"],) * 2
    else:
        assert isinstance(model.visual, ModifiedResNet)
        assert [len(getattr(model.visual, f"layer{i}")) for i in (1, 2, 3, 4)] == list(sizes["vision_layers"])

    # the weights are the generated ones, whatever the file format (up to build_model's fp16 rounding)
    expected = tiny_state_dict(arch, seed=3)
    loaded = model.state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, rtol=1e-3, atol=1e-4, msg=key)

    image = preprocess(Image.new("RGB", (50, 40), (120, 30, 200))).unsqueeze(0)
    assert image.shape == (1, 3, sizes["image_resolution"], sizes["image_resolution"])
    logits_per_image, logits_per_text = model(image, clip.tokenize(["a cat", "a dog"]))
    assert logits_per_image.shape == (1, 2) and torch.isfinite(logits_per_image).all()


@pytest.mark.parametrize("arch", ["ViT", "RN"])
def test_both_formats_give_the_same_state_dict(checkpoints, arch):
    a = clip.load_state_dict(checkpoints[arch, "state_dict"])
    b = clip.load_state_dict(checkpoints[arch, "torchscript"])
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_build_model_is_fp16_eval_like_openai():
    model = clip.build_model(tiny_state_dict("ViT"))
    assert not model.training
    assert model.dtype == torch.float16
    assert model.visual.proj.dtype == torch.float16 and model.text_projection.dtype == torch.float16
    assert model.ln_final.weight.dtype == torch.float32  # norms stay fp32
    assert clip.build_model(model.state_dict()).visual.proj.shape == model.visual.proj.shape


def test_build_model_rejects_foreign_state_dicts():
    with pytest.raises(ValueError, match="not a CLIP state dict"):
        clip.build_model({"fc.weight": torch.zeros(2, 2)})


def test_jit_true_is_refused_with_advice(checkpoints):
    with pytest.raises(ValueError, match="jit=False"):
        clip.load(checkpoints["ViT", "torchscript"], device="cpu", jit=True)


def test_unknown_backbone_lists_known_names():
    with pytest.raises(ValueError) as err:
        clip.load_state_dict("ViT-H/99")
    assert "ViT-B/16" in str(err.value) and "RN50x64" in str(err.value)


def test_missing_file_names_the_path(tmp_path):
    missing = str(tmp_path / "nowhere" / "ViT-B-16.pt")
    with pytest.raises(FileNotFoundError, match="MODEL.BACKBONE.PATH") as err:
        clip.load(missing, device="cpu")
    assert missing in str(err.value)


# ---- download and checksum, with urllib served from local bytes ----

class FakeResponse(io.BytesIO):
    def __init__(self, payload: bytes):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A tiny checkpoint 'hosted' at an OpenAI-style URL (sha256 as the second-to-last element)."""
    payload_path = save_tiny_clip(str(tmp_path / "source.pt"))
    with open(payload_path, "rb") as f:
        payload = f.read()
    sha = hashlib.sha256(payload).hexdigest()
    url = f"https://openaipublic.example/clip/models/{sha}/Tiny-ViT.pt"
    state = {"payload": payload, "requests": 0}

    def fake_urlopen(requested_url, *args, **kwargs):
        assert requested_url == url
        state["requests"] += 1
        return FakeResponse(state["payload"])

    monkeypatch.setattr(clip_module.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setitem(clip_module._MODELS, "Tiny-ViT", url)
    state.update(url=url, sha=sha, cache=tmp_path / "cache")
    return state


def test_download_verifies_and_caches(served):
    path = clip_module._download(served["url"], str(served["cache"]))
    assert path == str(served["cache"] / "Tiny-ViT.pt")
    assert os.listdir(served["cache"]) == ["Tiny-ViT.pt"]  # temporary file renamed, none left
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == served["sha"]
    # a verified cached file is used without a new request
    model, _ = clip.load("Tiny-ViT", device="cpu", download_root=str(served["cache"]))
    assert served["requests"] == 1 and isinstance(model.visual, VisionTransformer)


def test_cache_dir_from_environment(served, tmp_path, monkeypatch):
    monkeypatch.setenv("CLIP_CACHE_DIR", str(tmp_path / "env-cache"))
    assert clip_module._download(served["url"]) == str(tmp_path / "env-cache" / "Tiny-ViT.pt")


def test_corrupt_cached_file_is_downloaded_again(served):
    served["cache"].mkdir()
    target = served["cache"] / "Tiny-ViT.pt"
    target.write_bytes(served["payload"][: len(served["payload"]) // 2])  # a truncated download
    with pytest.warns(UserWarning, match="SHA256"):
        clip.load_state_dict("Tiny-ViT", download_root=str(served["cache"]))
    assert served["requests"] == 1
    assert hashlib.sha256(target.read_bytes()).hexdigest() == served["sha"]


def test_checksum_mismatch_after_download_is_an_error(served):
    served["payload"] = served["payload"][:-10] + b"0123456789"  # the server sends different bytes
    with pytest.raises(RuntimeError, match="SHA256") as err:
        clip_module._download(served["url"], str(served["cache"]))
    assert served["sha"] in str(err.value)
    assert os.listdir(served["cache"]) == []  # nothing usable, nothing half-written


def test_offline_without_file_says_where_to_put_it(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(clip_module.urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError) as err:
        clip.load("ViT-B/16", device="cpu", download_root=str(tmp_path))
    message = str(err.value)
    assert str(tmp_path / "ViT-B-16.pt") in message
    assert "MODEL.BACKBONE.PATH" in message and "openaipublic" in message
    assert os.listdir(tmp_path) == []
