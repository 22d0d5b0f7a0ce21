"""The vocabulary words nearest to each learned prompt token of a checkpoint (CoOp's interpret_prompt.py).

    python -m tools.interpret_prompts output/fewshot/dtd/shots_16/CoOp/vit_b16/seed1 --topk 5 --out results/dtd_words
    python -m tools.interpret_prompts RUN_DIR --epoch 40 --backbone ViT-B/16

RUN_DIR is a training output folder (train.py's ``--output-dir``, also what ``--model-dir`` takes),
one of its model folders (``<run>/<name>/``), or a checkpoint file. Without ``--epoch`` the file
named in ``<name>/checkpoint`` (the last one saved) is read, else ``model-best.pth.tar``, else the
highest epoch. Every trainer's layout is read, ours and the releases' whole-model files:

* ``ctx``: the input context of CoOp, CoCoOp, KgCoOp, IVLP, PromptSRC and MaPLe (text;
  ``(n_cls, n_ctx, width)`` with CoOp's class-specific context);
* ``ctx_txt_lst.<b>`` / ``ctx_img_lst.<b>``: DPL's deep prompt of text / image block b (the supernet's
  ``ctx_txt_lst.<b>.<i>``: option i + 1);
* ``text_deep.<b>`` / ``vision_deep.<b>`` and ``vpt``: IVLP, VPT and PromptSRC's deep prompts and
  vision input prompt;
* ``compound_prompts_text.<i>``: MaPLe's deep text prompt of block i + 1; MaPLe's image prompts are
  computed from them (``proj(ctx)``, ``compound_prompt_projections.<i>(compound_prompts_text.<i>)``).

(release files: ``prompt_learner.<key>``, and ``{image,text}_encoder.transformer.resblocks.<b>.VPT_shallow``,
``image_encoder.VPT``.) Each text-side token is compared with every row of CLIP's ``token_embedding``
(49408 BPE tokens): the top k by cosine similarity and the top k by Euclidean (L2) distance, the
latter being what CoOp's script reports. The weights come from ``--backbone`` (a name or a file),
else from the run's ``log.txt`` (``Loading CLIP (backbone: ...)``).

Which tokens are comparable. The input context sits exactly where word embeddings go, so its nearest
words are CoOp's reading. Deep text prompts have the width of the word embeddings but live in the
residual stream of block b (DPL's enter that block's attention as keys/values through its LayerNorm),
which drifts away from the input space with depth: their nearest words are reported the same way and
are indicative only. Image-side prompts live in the vision tower's width (the space of patch
embeddings); the tower's only map to another space, ``visual.proj``, acts on the pooled output and
lands in the joint image-text space, not in the word-embedding space, so there is no principled
projection: they are listed (shape, norms) and marked not comparable.
"""
import argparse
import json
import os
import os.path as osp
import re
import sys

import torch

MODEL_FILE_RE = re.compile(r"^model\.pth\.tar-(\d+)$")
BEST_FILE = "model-best.pth.tar"
LOADING_CLIP_RE = re.compile(r"^Loading CLIP \(backbone: (.+)\)\s*$", re.M)

# (pattern on our key names, branch, kind, block of group 1 + offset); the option of group 2, if any.
PROMPT_KEYS = [
    (re.compile(r"^ctx$"), "text", "input context", None),
    (re.compile(r"^ctx_txt_lst\.(\d+)(?:\.(\d+))?$"), "text", "deep prompt (DPL)", 0),
    (re.compile(r"^text_deep\.(\d+)$"), "text", "deep prompt", 0),
    (re.compile(r"^compound_prompts_text\.(\d+)$"), "text", "deep prompt (MaPLe)", 1),
    (re.compile(r"^vpt$"), "image", "input prompt", None),
    (re.compile(r"^vision_deep\.(\d+)$"), "image", "deep prompt", 0),
    (re.compile(r"^ctx_img_lst\.(\d+)(?:\.(\d+))?$"), "image", "deep prompt (DPL)", 0),
]
EXPECTED_KEYS = ("`ctx` (CoOp, CoCoOp, KgCoOp, IVLP, PromptSRC, MaPLe), `ctx_txt_lst.<block>` / `ctx_img_lst.<block>` "
                 "(DPL), `text_deep.<block>` / `vision_deep.<block>` / `vpt` (IVLP, VPT, PromptSRC), "
                 "`compound_prompts_text.<i>` (MaPLe), or a release's whole-model keys (`prompt_learner.<key>`, "
                 "`*.VPT_shallow`, `image_encoder.VPT`)")
NOT_COMPARABLE = ("not compared with the vocabulary: they live in the vision tower's width, and no map takes them "
                  "to the word-embedding space (docs/tools.md)")


# ---------------------------------------------------------------------------- finding checkpoints
def checkpoint_files(folder):
    """{epoch: path} of ``model.pth.tar-<epoch>`` files and the best file (key "best") in ``folder``."""
    found = {}
    for name in os.listdir(folder):
        match = MODEL_FILE_RE.match(name)
        if match:
            found[int(match.group(1))] = osp.join(folder, name)
        elif name == BEST_FILE:
            found["best"] = osp.join(folder, name)
    return found


def pick_file(folder, epoch=None):
    from dassl.utils import MissingFileError

    found = checkpoint_files(folder)
    if epoch is not None:
        if epoch not in found:
            epochs = sorted(k for k in found if k != "best")
            raise MissingFileError(f'No "{osp.join(folder, f"model.pth.tar-{epoch}")}"; this folder has the epochs '
                                   f"{epochs}{' and model-best.pth.tar' if 'best' in found else ''}: pass one of "
                                   "them to --epoch, or omit --epoch for the last one saved.")
        return found[epoch]
    pointer = osp.join(folder, "checkpoint")
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = osp.join(folder, f.read().strip())
        if osp.isfile(named):
            return named
    if "best" in found:
        return found["best"]
    return found[max(k for k in found if k != "best")]


def find_checkpoints(path, epoch=None):
    """[(model name, file)] of a checkpoint file, a model folder or a run folder (one per model folder)."""
    from dassl.utils import MissingFileError

    if osp.isfile(path):
        return [(osp.basename(osp.dirname(osp.abspath(path))), path)]
    if not osp.isdir(path):
        raise MissingFileError(f"{path} does not exist; expected a training output folder (train.py --output-dir), "
                               "one of its model folders, or a checkpoint file.")
    if checkpoint_files(path):
        return [(osp.basename(osp.abspath(path)), pick_file(path, epoch))]
    models = [name for name in sorted(os.listdir(path))
              if osp.isdir(osp.join(path, name)) and checkpoint_files(osp.join(path, name))]
    if not models:
        raise MissingFileError(
            f"No checkpoint in {path}: expected <run>/<model name>/model.pth.tar-<epoch> or model-best.pth.tar "
            "(the folders train.py writes under --output-dir, e.g. prompt_learner/, MultiModalPromptLearner/, "
            "VLPromptLearner/), or give a checkpoint file.")
    return [(name, pick_file(osp.join(path, name), epoch)) for name in models]


def backbone_from_log(path):
    """The CLIP weights a run used, from the ``Loading CLIP (backbone: ...)`` line of its log.txt."""
    folder = osp.abspath(path if osp.isdir(path) else osp.dirname(path))
    for candidate in (folder, osp.dirname(folder), osp.dirname(osp.dirname(folder))):
        log = osp.join(candidate, "log.txt")
        if osp.isfile(log):
            with open(log, errors="replace") as f:
                found = LOADING_CLIP_RE.findall(f.read())
            if found:
                return found[-1].strip()
    return None


# ---------------------------------------------------------------------------- prompts of a state dict
def our_key(key):
    """A state-dict key under our prompt-learner names (releases' whole-model keys mapped), or None."""
    from trainers.ivlp import VLPromptLearner

    if key.startswith("module."):
        key = key[len("module."):]
    released = VLPromptLearner.from_release_key(key)  # VPT_shallow / image_encoder.VPT / prompt_learner.ctx
    if released is not None:
        return released
    if key.startswith("prompt_learner."):
        return key[len("prompt_learner."):]
    return key


def prompt_tensors(state_dict):
    """([{key, branch, kind, block, option, tokens (n, width) float32, rows}], [ignored keys])."""
    prompts, ignored = [], []
    for raw_key, value in state_dict.items():
        key = our_key(raw_key)
        for pattern, branch, kind, offset in PROMPT_KEYS:
            match = pattern.match(key)
            if match and torch.is_tensor(value) and value.dim() >= 2:
                block = 0 if offset is None else int(match.group(1)) + offset
                option = int(match.group(2)) + 1 if pattern.groups >= 2 and match.group(2) is not None else None
                tokens = value.detach().float().cpu()
                rows = [(None, t) for t in range(tokens.shape[0])]
                if tokens.dim() == 3:  # CoOp's class-specific context: (n_cls, n_ctx, width)
                    rows = [(c, t) for c in range(tokens.shape[0]) for t in range(tokens.shape[1])]
                    tokens = tokens.reshape(-1, tokens.shape[-1])
                prompts.append(dict(key=raw_key, branch=branch, kind=kind, block=block, option=option,
                                    where=where(block, option, offset is None), tokens=tokens, rows=rows))
                break
        else:
            ignored.append(raw_key)
    prompts += maple_vision_prompts(state_dict)
    order = {"text": 0, "image": 1}
    prompts.sort(key=lambda p: (order[p["branch"]], p["block"], p["option"] or 0, p["key"]))
    return prompts, ignored


def where(block, option, is_input):
    """"input", "block 3" or "block 3, option 2" (a DPL supernet's option of 2 tokens)."""
    text = "input" if is_input else f"block {block}"
    return text + (f", option {option}" if option else "")


def maple_vision_prompts(state_dict):
    """MaPLe's image prompts, computed: proj(ctx) (input) and projection_i(compound_prompts_text.i) (block i+1)."""
    sd = {our_key(k): v for k, v in state_dict.items()}
    deep = sorted({int(m.group(1)) for m in map(re.compile(r"^compound_prompt_projections\.(\d+)\.weight$").match, sd)
                   if m})
    prompts = []
    pairs = [("proj", "ctx", 0)] + [(f"compound_prompt_projections.{i}", f"compound_prompts_text.{i}", i + 1)
                                    for i in deep]
    for layer, source, block in pairs:
        weight, bias = sd.get(layer + ".weight"), sd.get(layer + ".bias")
        if weight is None or source not in sd or sd[source].dim() != 2:
            continue
        tokens = sd[source].float() @ weight.float().t() + (0 if bias is None else bias.float())
        prompts.append(dict(key=f"{layer}({source})", branch="image", kind="prompt (MaPLe: text prompt mapped)",
                            block=block, option=None, where=where(block, None, block == 0),
                            tokens=tokens.detach().cpu(),
                            rows=[(None, t) for t in range(tokens.shape[0])]))
    return prompts


# ---------------------------------------------------------------------------- nearest words
class Vocabulary:
    """CLIP's token embeddings (vocab, width) in float32 and the BPE tokens they stand for."""

    def __init__(self, embedding, source=""):
        from clip.simple_tokenizer import SimpleTokenizer

        self.embedding = embedding.float()
        self.normalised = torch.nn.functional.normalize(self.embedding, dim=-1)
        self.tokenizer = SimpleTokenizer()
        self.source = source

    @classmethod
    def from_weights(cls, name_or_path):
        import clip

        state_dict = clip.load_state_dict(name_or_path)
        return cls(state_dict["token_embedding.weight"], name_or_path)

    @property
    def width(self):
        return self.embedding.shape[1]

    def word(self, index):
        """The BPE token as text: a trailing "</w>" (end of a word) becomes nothing, bytes are decoded."""
        return self.tokenizer.decode([int(index)]).strip() or self.tokenizer.decoder[int(index)]

    def bpe(self, index):
        """The raw BPE token ("photo</w>": a whole word; "eer": a piece that continues)."""
        return self.tokenizer.decoder[int(index)]

    def nearest(self, tokens, k):
        """Per token: ([(id, word, cosine)] best first, [(id, word, L2 distance)] nearest first)."""
        k = min(k, self.embedding.shape[0])
        cosine = torch.nn.functional.normalize(tokens, dim=-1) @ self.normalised.t()  # (n, vocab)
        top_cos = cosine.topk(k, dim=-1)
        # exact differences, not the |a|^2 + |b|^2 - 2ab shortcut: a planted word is at distance 0
        distance = torch.cdist(tokens, self.embedding, compute_mode="donot_use_mm_for_euclid_dist")  # (n, vocab)
        top_l2 = distance.topk(k, dim=-1, largest=False)
        out = []
        for i in range(tokens.shape[0]):
            by_cos = [(int(j), self.word(j), float(s)) for s, j in zip(top_cos.values[i], top_cos.indices[i])]
            by_l2 = [(int(j), self.word(j), float(d)) for d, j in zip(top_l2.values[i], top_l2.indices[i])]
            out.append((by_cos, by_l2))
        return out


def interpret(path, vocabulary, topk=5, epoch=None):
    """{"checkpoints": [...], "vocabulary": ..., "topk": k} for a run folder, model folder or file."""
    from dassl.utils import CheckpointError, ConfigError, load_checkpoint

    report = {"vocabulary": {"source": vocabulary.source, "size": vocabulary.embedding.shape[0],
                             "width": vocabulary.width}, "topk": topk, "checkpoints": []}
    searched = []
    for model, file in find_checkpoints(path, epoch):
        checkpoint = load_checkpoint(file)
        state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state_dict, dict):
            raise CheckpointError(f"{file} holds a {type(checkpoint).__name__}, expected a dict with a state_dict.")
        prompts, ignored = prompt_tensors(state_dict)
        searched.append((file, sorted(state_dict)[:12]))
        entries = []
        for prompt in prompts:
            tokens = prompt["tokens"]
            entry = {k: prompt[k] for k in ("key", "branch", "kind", "block", "option", "where")}
            entry.update(num_tokens=len(prompt["rows"]), width=tokens.shape[-1])
            norms = tokens.norm(dim=-1).tolist()
            if prompt["branch"] == "image":
                entry.update(comparable=False, note=NOT_COMPARABLE,
                             tokens=[{"class": c, "index": t, "norm": n} for (c, t), n in zip(prompt["rows"], norms)])
            else:
                if tokens.shape[-1] != vocabulary.width:
                    raise ConfigError(
                        f"{file}: {prompt['key']} is {tokens.shape[-1]} wide but the token embeddings of "
                        f"{vocabulary.source} are {vocabulary.width} wide: pass the CLIP the run was trained with "
                        "(--backbone NAME_OR_PATH).")
                nearest = vocabulary.nearest(tokens, topk) if len(tokens) else []
                entry["comparable"] = True
                entry["tokens"] = [
                    {"class": c, "index": t, "norm": n,
                     "cosine": [{"id": i, "word": w, "bpe": vocabulary.bpe(i), "cosine": s} for i, w, s in by_cos],
                     "l2": [{"id": i, "word": w, "bpe": vocabulary.bpe(i), "distance": d} for i, w, d in by_l2]}
                    for (c, t), n, (by_cos, by_l2) in zip(prompt["rows"], norms, nearest)]
            entries.append(entry)
        report["checkpoints"].append({"model": model, "path": file, "epoch": checkpoint.get("epoch"),
                                      "prompts": entries, "other_keys": ignored})
    if not any(c["prompts"] for c in report["checkpoints"]):
        details = "; ".join(f"{file} has {keys}" for file, keys in searched)
        raise CheckpointError(f"No learned prompt in {path}: expected the prompt learner's tensors {EXPECTED_KEYS}. "
                              f"Found only other keys ({details}). Point at the run folder of a prompt learner "
                              "(a trainer that learns prompts, not ZeroshotCLIP or a head alone).")
    return report


# ---------------------------------------------------------------------------- output
def _cell(text):
    return str(text).replace("|", "\\|").replace("`", "'")


def to_markdown(report):
    vocab = report["vocabulary"]
    lines = ["# Nearest vocabulary words of the learned prompts", "",
             f"Vocabulary: `token_embedding` of `{vocab['source']}` ({vocab['size']:,} BPE tokens x {vocab['width']}); "
             f"top {report['topk']} by cosine similarity (higher is nearer) and by L2 distance (lower is nearer). "
             "Deep text prompts live in their block's residual stream: their words are indicative only.", ""]
    for checkpoint in report["checkpoints"]:
        lines += [f"## `{checkpoint['model']}`: `{checkpoint['path']}` (epoch {checkpoint['epoch']})", ""]
        if not checkpoint["prompts"]:
            lines += ["No prompt tensors in this file.", ""]
        text = [e for e in checkpoint["prompts"] if e["comparable"]]
        if text:
            lines += ["| branch | where | tensor | token | norm | nearest by cosine | nearest by L2 |",
                      "|---|---|---|---:|---:|---|---|"]
            for entry in text:
                if not entry["tokens"]:
                    lines.append(f"| text | {entry['where']} | `{entry['key']}` | – | – "
                                 "| (0 tokens: plain block) | |")
                for token in entry["tokens"]:
                    index = token["index"] if token["class"] is None else f"class {token['class']}, {token['index']}"
                    by_cos = ", ".join(f"{_cell(w['word'])} ({w['cosine']:.3f})" for w in token["cosine"])
                    by_l2 = ", ".join(f"{_cell(w['word'])} ({w['distance']:.3f})" for w in token["l2"])
                    lines.append(f"| text | {entry['where']} | `{entry['key']}` | {index} | {token['norm']:.3f} "
                                 f"| {by_cos} | {by_l2} |")
            lines.append("")
        image = [e for e in checkpoint["prompts"] if not e["comparable"]]
        if image:
            lines += [f"Image-side prompts ({NOT_COMPARABLE}):", "",
                      "| where | tensor | tokens x width | mean norm |", "|---|---|---|---:|"]
            for entry in image:
                norms = [t["norm"] for t in entry["tokens"]]
                mean = f"{sum(norms) / len(norms):.3f}" if norms else "–"
                lines.append(f"| {entry['where']} | `{entry['key']}` | {entry['num_tokens']} x {entry['width']} "
                             f"| {mean} |")
            lines.append("")
    return "\n".join(lines)


def write_outputs(report, markdown, prefix):
    """<prefix>.md and <prefix>.json, each written to a temporary name and renamed."""
    from dassl.utils.torchtools import _write_text

    folder = osp.dirname(osp.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    _write_text(prefix + ".md", markdown + "\n")
    _write_text(prefix + ".json", json.dumps(report, indent=2) + "\n")
    return [prefix + ".md", prefix + ".json"]


def main(argv=None):
    from dassl.utils import ConfigError, UserError, user_message

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="training output folder, one of its model folders, or a checkpoint file")
    parser.add_argument("--epoch", type=int, help="read model.pth.tar-<EPOCH> (default: the last saved)")
    parser.add_argument("--backbone", help="CLIP name or weights file whose token embeddings are the vocabulary "
                                           "(default: the one named in the run's log.txt)")
    parser.add_argument("--topk", type=int, default=5, help="words per token and measure (default 5)")
    parser.add_argument("--out", help="also write <OUT>.md and <OUT>.json")
    args = parser.parse_args(argv)
    try:
        if args.topk < 1:
            raise ConfigError(f"--topk is {args.topk}; expected at least 1.")
        backbone = args.backbone or backbone_from_log(args.path)
        if not backbone:
            raise ConfigError("Which CLIP? No log.txt with a 'Loading CLIP (backbone: ...)' line was found at or above "
                              f"{args.path}; pass --backbone with the name or weights file the run was trained with.")
        report = interpret(args.path, Vocabulary.from_weights(backbone), args.topk, args.epoch)
    except UserError as error:
        print(f"error: {user_message(error)}", file=sys.stderr)
        return 2
    markdown = to_markdown(report)
    print(markdown)
    if args.out:
        for path in write_outputs(report, markdown, args.out):
            print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
