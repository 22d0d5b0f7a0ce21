"""Compare searched prompt configurations: lengths per block, learnable parameters, extra compute.

    python -m tools.compare_configs output/search/*/shots_16/TrainerSupernet/*/seed1 --backbone ViT-B/16

Each source is a ``searched_config.json`` (or a hand-written file of that form) or a search
output folder (its searched_config.json, else the argmax of its last alpha_e<E>_{img,txt}.npy),
read by ``trainers.prompt_config.read_prompt_lengths`` (the owner of the search-output format).

Cost model (FLOPs = 2 x multiply-adds; layer norms, softmax, GELU, biases ignored):
  plain block, n tokens, width d:          24 n d^2 + 4 n^2 d
      (q, k, v and output projections 8 n d^2, attention scores and weighted sum 4 n^2 d, MLP 16 n d^2)
  extra of a block with k prompt tokens:    4 k d^2 + 4 n k d
      (the prompt's key and value projections after ln_1: 2 x k d^2 multiply-adds;
       the added attention columns, q.k and weights x v: 2 x n k d multiply-adds)
  plain image forward = patch embedding 2 (n-1) 3 p^2 d + blocks + projection 2 d e   (per image)
  plain text forward  = blocks (n = context length) + projection 2 d e               (per class prompt)
Learnable prompt parameters = sum over blocks of k x width, per branch.
"""
import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass

from trainers.prompt_config import BRANCHES, SEARCHED_CONFIG, read_prompt_lengths

FORMULA = __doc__[__doc__.index("Cost model"):].strip()


@dataclass(frozen=True)
class Backbone:
    image_width: int
    text_width: int
    image_tokens: int  # class token + patches
    text_tokens: int  # context length
    image_layers: int
    text_layers: int
    patch_size: int
    embed_dim: int

    def width(self, branch):
        return self.image_width if branch == "image" else self.text_width

    def layers(self, branch):
        return self.image_layers if branch == "image" else self.text_layers

    def tokens(self, branch):
        return self.image_tokens if branch == "image" else self.text_tokens


BACKBONES = {
    "ViT-B/16": Backbone(768, 512, 197, 77, 12, 12, 16, 512),
    "ViT-B/32": Backbone(768, 512, 50, 77, 12, 12, 32, 512),
    "ViT-L/14": Backbone(1024, 768, 257, 77, 24, 12, 14, 768),
}


def backbone_from_state_dict(state_dict):
    """The widths and depths of a ViT CLIP, read off its weights like clip.build_model does."""
    if "visual.proj" not in state_dict:
        raise ValueError("These weights are not a ViT CLIP (no 'visual.proj'); deep prompts need a ViT backbone.")

    def layers(prefix):
        return len({k[len(prefix):].split(".")[0] for k in state_dict if k.startswith(prefix)})

    conv = state_dict["visual.conv1.weight"]  # (width, 3, patch, patch)
    return Backbone(
        image_width=int(conv.shape[0]), text_width=int(state_dict["ln_final.weight"].shape[0]),
        image_tokens=int(state_dict["visual.positional_embedding"].shape[0]),
        text_tokens=int(state_dict["positional_embedding"].shape[0]),
        image_layers=layers("visual.transformer.resblocks."), text_layers=layers("transformer.resblocks."),
        patch_size=int(conv.shape[-1]), embed_dim=int(state_dict["visual.proj"].shape[1]))


def backbone_from_weights(path):
    """Dimensions of a CLIP weights file (TorchScript archive or state dict), read by clip/."""
    from clip.clip import load_state_dict  # imports torch: only needed for --clip-weights

    if not os.path.isfile(path):
        raise FileNotFoundError(f"CLIP weights not found: {path}. Pass a .pt file (TorchScript or state dict).")
    return backbone_from_state_dict(load_state_dict(path))


# ---------------------------------------------------------------------------- configurations
def label_of(source):
    """'<dataset>/seed<S>' for a folder of the output layout, else the file or folder name."""
    path = os.path.abspath(source)
    if os.path.isfile(path):
        path = os.path.dirname(path) if os.path.basename(path) == SEARCHED_CONFIG else path
    parts = path.split(os.sep)
    shots = [i for i, p in enumerate(parts) if p.startswith("shots_")]
    if shots and shots[-1] > 0:
        dataset = parts[shots[-1] - 1]
        return f"{dataset}/{parts[-1]}" if parts[-1].startswith("seed") else dataset
    return os.path.splitext(os.path.basename(path))[0]


# ---------------------------------------------------------------------------- cost
def plain_block_flops(n, d):
    return 24 * n * d * d + 4 * n * n * d


def extra_block_flops(k, n, d):
    return 4 * k * d * d + 4 * n * k * d


def plain_forward_flops(backbone, branch):
    d, n = backbone.width(branch), backbone.tokens(branch)
    flops = backbone.layers(branch) * plain_block_flops(n, d) + 2 * d * backbone.embed_dim
    if branch == "image":
        flops += 2 * (n - 1) * 3 * backbone.patch_size ** 2 * d
    return flops


def analyse(lengths, backbone):
    """Per branch: lengths, tokens, parameters, extra FLOPs and the percentage of a plain forward."""
    result = {}
    for branch in BRANCHES:
        ks = lengths[branch]
        if len(ks) != backbone.layers(branch):
            raise ValueError(f"The {branch} configuration has {len(ks)} blocks but the backbone has "
                             f"{backbone.layers(branch)} {branch} layers: pick the backbone it was searched with.")
        d, n = backbone.width(branch), backbone.tokens(branch)
        extra = sum(extra_block_flops(k, n, d) for k in ks)
        plain = plain_forward_flops(backbone, branch)
        result[branch] = dict(prompt_lengths=ks, tokens=sum(ks), prompted_blocks=sum(k > 0 for k in ks),
                              parameters=sum(ks) * d, extra_flops=extra, plain_flops=plain,
                              extra_percent=100.0 * extra / plain)
    result["parameters"] = result["image"]["parameters"] + result["text"]["parameters"]
    return result


def to_markdown(rows, backbone_name):
    lines = [f"## Prompt configurations ({backbone_name})", "",
             "| config | branch | prompt lengths per block | tokens | params | extra GFLOPs | % of plain CLIP |",
             "|---|---|---|---:|---:|---:|---:|"]
    for label, a in rows:
        for branch, unit in (("image", "per image"), ("text", "per class prompt")):
            b = a[branch]
            lines.append(f"| {label} | {branch} | {' '.join(map(str, b['prompt_lengths']))} | {b['tokens']} "
                         f"| {b['parameters']:,} | {b['extra_flops'] / 1e9:.4f} | {b['extra_percent']:.2f}% {unit} |")
        lines.append(f"| {label} | both | | | **{a['parameters']:,}** | | |")
    return "\n".join(lines + ["", "```", FORMULA, "```", ""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", help="searched_config.json files or search output folders")
    parser.add_argument("--labels", nargs="+", help="one label per source (default: dataset/seed from the path)")
    parser.add_argument("--backbone", default="ViT-B/16", choices=sorted(BACKBONES))
    parser.add_argument("--clip-weights", help="read widths and depths from these CLIP weights instead")
    parser.add_argument("--out", help="also write <OUT>.md and <OUT>.json")
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.sources):
        parser.error(f"--labels has {len(args.labels)} entries for {len(args.sources)} sources.")

    backbone = backbone_from_weights(args.clip_weights) if args.clip_weights else BACKBONES[args.backbone]
    backbone_name = args.clip_weights or args.backbone
    labels = args.labels or [label_of(s) for s in args.sources]
    rows = [(label, analyse(read_prompt_lengths(s), backbone)) for label, s in zip(labels, args.sources)]
    text = to_markdown(rows, backbone_name)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + ".md", "w") as f:
            f.write(text)
        with open(args.out + ".json", "w") as f:
            json.dump({"backbone": backbone_name, "dimensions": asdict(backbone), "formula": FORMULA,
                       "configs": [dict(label=label, source=s, **a) for (label, a), s in zip(rows, args.sources)]},
                      f, indent=2)
        print(f"Wrote {args.out}.md and {args.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
