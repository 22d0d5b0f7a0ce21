"""OpenAI's CLIP API: `available_models`, `load`, `tokenize`, `build_model`, plus `load_state_dict`.

Weights come from OpenAI's public URLs; each URL carries the file's SHA256 as its second-to-last
path element, which is checked after every download and before a cached file is used. Cache folder:
`download_root`, else `$CLIP_CACHE_DIR`, else `~/.cache/clip`. Offline, pass a file path instead of
a name (trainers: `MODEL.BACKBONE.PATH`).
"""
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from functools import lru_cache
from typing import List, Union

import torch
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor
from tqdm import tqdm

from dassl.errors import ConfigError, DownloadError, MissingFileError, UnknownNameError

from .model import build_model, strip_non_parameters
from .simple_tokenizer import SimpleTokenizer as _Tokenizer

__all__ = ["available_models", "load", "load_state_dict", "tokenize", "build_model"]

_BASE_URL = "https://openaipublic.azureedge.net/clip/models"
_MODELS = {
    "RN50": f"{_BASE_URL}/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
    "RN101": f"{_BASE_URL}/8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599/RN101.pt",
    "RN50x4": f"{_BASE_URL}/7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd/RN50x4.pt",
    "RN50x16": f"{_BASE_URL}/52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa/RN50x16.pt",
    "RN50x64": f"{_BASE_URL}/be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c/RN50x64.pt",
    "ViT-B/32": f"{_BASE_URL}/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    "ViT-B/16": f"{_BASE_URL}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
    "ViT-L/14": f"{_BASE_URL}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    "ViT-L/14@336px": f"{_BASE_URL}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
}

# CLIP's image normalisation (per-channel mean and std of its training images)
_MEAN = (0.48145466, 0.4578275, 0.40821073)
_STD = (0.26862954, 0.26130258, 0.27577711)


def available_models() -> List[str]:
    return list(_MODELS)


def default_cache_dir() -> str:
    return os.environ.get("CLIP_CACHE_DIR") or os.path.expanduser("~/.cache/clip")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_sha256(url: str):
    candidate = url.split("/")[-2]
    is_sha = len(candidate) == 64 and all(c in "0123456789abcdef" for c in candidate.lower())
    return candidate.lower() if is_sha else None


def _how_to_provide(target: str, url: str) -> str:
    return (
        f"Provide the weights in one of these ways: set MODEL.BACKBONE.PATH (or pass a file path to "
        f"clip.load / clip.load_state_dict) to a local copy; or place the file at {target}; "
        f"or set $CLIP_CACHE_DIR to a folder holding {os.path.basename(target)}. The file is {url}"
    )


def _download(url: str, root: str = None) -> str:
    """Return the path of the verified file for `url` in the cache, downloading it if needed."""
    root = root or default_cache_dir()
    os.makedirs(root, exist_ok=True)
    target = os.path.join(root, os.path.basename(url))
    expected = _expected_sha256(url)

    if os.path.exists(target) and not os.path.isfile(target):
        raise DownloadError(f"{target} exists and is not a regular file; remove it or choose another download_root")
    if os.path.isfile(target):
        if expected is None or _sha256(target) == expected:
            return target
        warnings.warn(f"{target} does not match its SHA256 checksum (truncated or corrupt); downloading it again")

    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{os.path.basename(url)}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url) as source:
                    headers = getattr(source, "headers", None) or {}
                    total = int(headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="iB", unit_scale=True, unit_divisor=1024,
                              desc=os.path.basename(url)) as bar:
                        for chunk in iter(lambda: source.read(1 << 16), b""):
                            out.write(chunk)
                            digest.update(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, OSError) as err:
                raise DownloadError(
                    f"Could not download CLIP weights from {url} ({err}); expected a cached copy at {target}. "
                    + _how_to_provide(target, url)
                ) from err
        if expected is not None and digest.hexdigest() != expected:
            raise DownloadError(
                f"Downloaded {url} but its SHA256 is {digest.hexdigest()}, expected {expected}; the file was "
                f"discarded. Retry, or place a verified copy at {target}."
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def _resolve(name_or_path: str, download_root: str = None) -> str:
    if name_or_path in _MODELS:
        return _download(_MODELS[name_or_path], download_root)
    if os.path.isfile(name_or_path):
        return name_or_path
    # backbone names contain "/" too, so only a file extension or an absolute path marks a path
    looks_like_path = os.path.isabs(name_or_path) or name_or_path.endswith((".pt", ".pth", ".bin", ".ckpt"))
    if looks_like_path:
        raise MissingFileError(
            f"CLIP weights file {name_or_path} not found. Check MODEL.BACKBONE.PATH (or the path passed "
            f"to clip.load), or give a backbone name: {available_models()}"
        )
    raise UnknownNameError(
        f"Unknown CLIP backbone {name_or_path!r} (and no file at {os.path.abspath(name_or_path)}); "
        f"known backbones: {available_models()}, or pass the path of a weights file"
    )


def load_state_dict(name_or_path: str, download_root: str = None) -> dict:
    """Plain CLIP state dict (OpenAI key names, stored dtype) from a backbone name or a file.

    Reads both formats OpenAI's code accepts: a TorchScript archive (the official `.pt` files) and
    a plain state dict saved with `torch.save`.
    """
    path = _resolve(name_or_path, download_root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation notices
            state_dict = torch.jit.load(path, map_location="cpu").state_dict()
    except RuntimeError:  # not a TorchScript archive
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated, or not written by torch
            raise ConfigError(
                f"Cannot read CLIP weights {path} ({type(err).__name__}: {err}); expected a TorchScript "
                f"archive (OpenAI's .pt) or a state dict saved with torch.save. The file may be truncated or "
                f"of another kind: replace it, or give a backbone name ({available_models()})."
            ) from err
        if isinstance(state_dict, dict) and isinstance(state_dict.get("state_dict"), dict):
            state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict):
        raise ConfigError(
            f"{path} holds a {type(state_dict).__name__}, expected a CLIP state dict or TorchScript model"
        )
    return strip_non_parameters(dict(state_dict))


def _transform(n_px: int):
    return Compose([
        Resize(n_px, interpolation=InterpolationMode.BICUBIC),
        CenterCrop(n_px),
        lambda image: image.convert("RGB"),
        ToTensor(),
        Normalize(_MEAN, _STD),
    ])


def load(name_or_path: str, device: Union[str, torch.device] = "cuda" if torch.cuda.is_available() else "cpu",
         jit: bool = False, download_root: str = None):
    """Returns (model, preprocess). On CPU the model is float32; elsewhere fp16 like OpenAI's."""
    if jit:
        raise ValueError(
            "jit=True is not supported: the deep-prompt hook lives in the Python modules, so the "
            "TorchScript graph cannot be used. Call clip.load(..., jit=False) (the default)."
        )
    model = build_model(load_state_dict(name_or_path, download_root)).to(device)
    if str(device) == "cpu":
        model.float()
    return model, _transform(model.visual.input_resolution)


@lru_cache()
def _shared_tokenizer() -> _Tokenizer:
    return _Tokenizer()


def tokenize(texts: Union[str, List[str]], context_length: int = 77, truncate: bool = False) -> torch.LongTensor:
    """Token ids (len(texts), context_length): start token, BPE ids, end token, zero padding."""
    if isinstance(texts, str):
        texts = [texts]
    tokenizer = _shared_tokenizer()
    result = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [tokenizer.sot_token] + tokenizer.encode(text) + [tokenizer.eot_token]
        if len(ids) > context_length:
            if not truncate:
                raise RuntimeError(
                    f"Input {text!r} is {len(ids)} tokens long (with start/end tokens), more than the context "
                    f"length {context_length}. Shorten it or call tokenize(..., truncate=True)."
                )
            ids = ids[:context_length]
            ids[-1] = tokenizer.eot_token
        result[i, :len(ids)] = torch.tensor(ids)
    return result
