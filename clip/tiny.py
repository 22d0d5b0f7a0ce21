"""Random-weight CLIP checkpoints with OpenAI's key names, for tests, the demo and benchmarks.

`tiny_state_dict("ViT")` is a two-block ViT CLIP that runs in milliseconds on a CPU; it keeps the
real vocabulary (49408) and context length (77) so `clip.tokenize` output feeds it directly.
`tiny_state_dict("RN")` is a ModifiedResNet CLIP with small widths. `vit_b16_state_dict()` has the
shapes of ViT-B/16, so the real architecture can be built without downloading anything.
Heads are not stored in CLIP weights: `build_model` uses 64-wide heads, so widths are multiples of 64.

From the command line (a checkpoint in OpenAI's format, for trying the framework without weights):

    python -m clip.tiny tiny_vit.pt --arch vit                      # TorchScript, like OpenAI's .pt files
    python -m clip.tiny tiny_rn.pt --arch rn --format state_dict --seed 3
    python -m clip.tiny vit_b16_random.pt --arch vit --size vit-b16 # ViT-B/16 shapes, random weights
    python -m clip.tiny wide.pt --arch vit --set vision_layers=4 --set transformer_width=256

then `MODEL.BACKBONE.PATH tiny_vit.pt` (or `CLIP_WEIGHTS=tiny_vit.pt`) in place of real weights.
"""
import argparse
import os
import sys
import tempfile
import warnings

import torch

from .model import CLIP, HEAD_WIDTH

TINY_SIZES = {
    "ViT": dict(embed_dim=32, image_resolution=32, vision_layers=2, vision_width=128, vision_patch_size=8,
                context_length=77, vocab_size=49408, transformer_width=128, transformer_layers=2),
    # vision_width is the ResNet stem width: the pooled feature is 32x wider (here 256, 4 heads)
    "RN": dict(embed_dim=32, image_resolution=64, vision_layers=(1, 1, 1, 1), vision_width=8, vision_patch_size=None,
               context_length=77, vocab_size=49408, transformer_width=128, transformer_layers=2),
}

VIT_B16_SIZES = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16,
                     context_length=77, vocab_size=49408, transformer_width=512, transformer_layers=12)


def _check_sizes(sizes: dict):
    text_width = sizes["transformer_width"]
    if text_width % HEAD_WIDTH:
        raise ValueError(f"transformer_width must be a multiple of {HEAD_WIDTH} (head width), got {text_width}")
    is_vit = not isinstance(sizes["vision_layers"], (tuple, list))
    if is_vit and sizes["vision_width"] % HEAD_WIDTH:
        raise ValueError(f"ViT vision_width must be a multiple of {HEAD_WIDTH}, got {sizes['vision_width']}")
    if is_vit and sizes["image_resolution"] % sizes["vision_patch_size"]:
        raise ValueError("image_resolution must be a multiple of vision_patch_size")
    if not is_vit and (sizes["image_resolution"] % 32 or sizes["vision_width"] * 32 % HEAD_WIDTH):
        raise ValueError("ResNet: image_resolution must be a multiple of 32 and vision_width of 2")


def build_random_clip(arch: str = "ViT", seed: int = 0, **sizes) -> CLIP:
    """A float32 CLIP with OpenAI's initial scales; `sizes` override TINY_SIZES[arch]."""
    if arch not in TINY_SIZES:
        raise ValueError(f"arch must be one of {sorted(TINY_SIZES)}, got {arch!r}")
    unknown = set(sizes) - set(TINY_SIZES[arch])
    if unknown:
        raise ValueError(f"unknown size names {sorted(unknown)}; known: {sorted(TINY_SIZES[arch])}")
    full = {**TINY_SIZES[arch], **sizes}
    _check_sizes(full)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream untouched
        torch.manual_seed(seed)
        model = CLIP(transformer_heads=full["transformer_width"] // HEAD_WIDTH, **full)
    return model.eval()


def tiny_state_dict(arch: str = "ViT", seed: int = 0, **sizes) -> dict:
    """Random float32 weights with OpenAI's key names (load with `clip.build_model`)."""
    return {k: v.detach().clone() for k, v in build_random_clip(arch, seed, **sizes).state_dict().items()}


def vit_b16_state_dict(seed: int = 0) -> dict:
    """Random weights with the exact shapes of ViT-B/16 (about 150M parameters, a few seconds)."""
    return tiny_state_dict("ViT", seed, **VIT_B16_SIZES)


def save_tiny_clip(path: str, arch: str = "ViT", fmt: str = "state_dict", seed: int = 0, **sizes) -> str:
    """Write a random CLIP to `path` as a plain state dict (torch.save) or a TorchScript archive.

    The TorchScript archive is a traced model whose `state_dict()` has OpenAI's key names, so it
    loads through `clip.load` / `clip.load_state_dict` like the official `.pt` files.
    The file is written to a temporary name in the same folder, then renamed (no partial files).
    """
    if fmt not in ("state_dict", "torchscript"):
        raise ValueError(f"fmt must be 'state_dict' or 'torchscript', got {fmt!r}")
    model = build_random_clip(arch, seed, **sizes)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        if fmt == "state_dict":
            torch.save(model.state_dict(), tmp)
        else:
            image = torch.zeros(1, 3, model.visual.input_resolution, model.visual.input_resolution)
            text = torch.zeros(1, model.context_length, dtype=torch.long)
            text[0, 0] = 1
            with warnings.catch_warnings():  # torch's deprecation notice and the tracer's notes on Python ifs
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                traced = torch.jit.trace(model, (image, text), check_trace=False)
            # OpenAI's archives have the model itself at the top, so key names are unprefixed
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                torch.jit.save(traced, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def parse_size(text: str):
    """``"vision_layers=4"`` -> ``("vision_layers", 4)``; ``"vision_layers=1,1,1,1"`` -> a tuple."""
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. vision_layers=4), got {text!r}")
    try:
        numbers = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key}: expected integers (comma-separated for a ResNet), got {value!r}")
    return key.strip(), numbers if len(numbers) > 1 else numbers[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clip.tiny",
        description="Write a random-weight CLIP checkpoint with OpenAI's key names (for tests and demos; "
                    "its predictions are meaningless).")
    parser.add_argument("out", help="the .pt file to write (folders are created)")
    parser.add_argument("--arch", type=str.lower, choices=["vit", "rn"], default="vit",
                        help="vision tower: a ViT or OpenAI's ModifiedResNet (default: vit)")
    parser.add_argument("--size", choices=["tiny", "vit-b16"], default="tiny",
                        help="tiny (milliseconds on a CPU; default) or the shapes of ViT-B/16 (about 600 MB)")
    parser.add_argument("--set", dest="sizes", action="append", type=parse_size, default=[], metavar="NAME=VALUE",
                        help=f"override one size (repeatable); names: {', '.join(sorted(TINY_SIZES['ViT']))}")
    parser.add_argument("--format", choices=["torchscript", "state_dict"], default="torchscript",
                        help="torchscript (an archive like OpenAI's files; default) or a plain state dict")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    args = parser.parse_args(argv)

    arch = {"vit": "ViT", "rn": "RN"}[args.arch]
    if args.size == "vit-b16" and arch != "ViT":
        parser.error("--size vit-b16 needs --arch vit")
    sizes = dict(VIT_B16_SIZES) if args.size == "vit-b16" else {}
    sizes.update(dict(args.sizes))
    try:
        path = save_tiny_clip(args.out, arch=arch, fmt=args.format, seed=args.seed, **sizes)
    except ValueError as error:  # an unknown size name or inconsistent sizes
        parser.error(str(error))
    print(f"Wrote a random {arch} CLIP ({args.format}, seed {args.seed}) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
