"""Peak memory of DPL's text branch: forward + backward of the text encoder for every class.

The text tower has ViT-B/16's shape (width 512, 12 blocks, 77 tokens; random weights, no
download); the class prompts are "a photo of a class number i." Each measurement runs in its own
process: one forward + backward of ``PromptedCLIP.encode_text`` (the loss: cross-entropy of
random image features against all class features), gradients to the deep prompts only.

* ``--stage search``: the supernet's mixture of options 0..N_CTX in every block (``--impl``);
* ``--stage train``: the subnet's fixed prompts, N_CTX tokens in the first 9 of 12 blocks.

``--chunks 0,100`` compares all classes at once (0) with TEXT_CHUNK_SIZE 100 (chunks of 100
classes, activation checkpointing). Peak memory: on CUDA max_memory_allocated above the model;
on CPU the growth of the resident set size over the process after building the model (its
high-water mark reset there; benchmarks/machine.py).

    python benchmarks/text_memory.py                       # 100 and 1000 classes, chunk 0 and 100
    python benchmarks/text_memory.py --device cuda --classes 100,1000,5000

A measurement is skipped (and reported as such) when its predicted peak, scaled linearly in the
number of classes from a smaller measurement of the same chunk size, exceeds --max-gb or 80% of
the memory the machine has available (MemAvailable in /proc/meminfo) at that moment.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TEXT_SIZES = dict(embed_dim=512, context_length=77, vocab_size=49408, transformer_width=512, transformer_layers=12)
# The image tower is not measured: a small one keeps the build fast.
SMALL_VISION = dict(image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=16)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", default="100,1000", help="comma-separated numbers of classes")
    p.add_argument("--chunks", default="0,100", help="comma-separated TEXT_CHUNK_SIZE values (0: no chunking)")
    p.add_argument("--stage", choices=["search", "train"], default="search")
    p.add_argument("--impl", choices=["fused", "naive"], default="fused", help="search stage mixture")
    p.add_argument("--n-ctx", type=int, default=6)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["fp32", "amp", "bf16"], default="fp32")
    p.add_argument("--text-layers", type=int, default=12, help="12: ViT-B/16; fewer only for smoke tests")
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: torch's default)")
    p.add_argument("--max-gb", type=float, default=16.0, help="skip measurements predicted to need more")
    p.add_argument("--json-out", default="", help="also write the results to this JSON file")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child: one measurement, JSON out
    return p.parse_args(argv)


def int_list(text, name):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"{name} must be comma-separated integers, got {text!r}")
    if not values or min(values) < 0:
        raise SystemExit(f"{name} needs integers >= 0, got {text!r}")
    return values


def build(args, n_classes, chunk):
    """PromptedCLIP with ViT-B/16's text tower, the class inputs and the per-block text prompts."""
    import torch
    import torch.nn.functional as F

    from clip.tiny import build_random_clip
    from trainers.common import cast_clip, tokenize
    from trainers.deep_prompts import MixedPrompt, fixed_prompts, subnet_prompts, supernet_options
    from trainers.model import PromptedCLIP

    sizes = dict(TEXT_SIZES, transformer_layers=args.text_layers, **SMALL_VISION)
    clip_model = cast_clip(build_random_clip("ViT", seed=0, **sizes), "fp32")
    model = PromptedCLIP(clip_model, text_chunk_size=chunk)
    for p in model.parameters():
        p.requires_grad_(False)
    tokenized = tokenize([f"a photo of a class number {i}." for i in range(n_classes)], clip_model)
    with torch.no_grad():
        embeddings = clip_model.token_embedding(tokenized)  # (n_cls, 77, width)
    blocks, width = args.text_layers, TEXT_SIZES["transformer_width"]
    if args.stage == "search":
        options = supernet_options(blocks, width, args.n_ctx, "uniform")
        alphas = torch.nn.Parameter(1e-3 * torch.randn(blocks, args.n_ctx + 1))
        learnable = list(options.parameters()) + [alphas]

        def prompts(device):
            log_weights = F.log_softmax(alphas.float(), dim=-1)
            return [MixedPrompt(list(opts), log_weights[b], args.impl) for b, opts in enumerate(options)]
    else:
        lengths = [args.n_ctx if b < blocks * 3 // 4 else 0 for b in range(blocks)]
        subnet = subnet_prompts(lengths, width, 0.02)
        learnable = list(subnet.parameters())

        def prompts(device):
            return fixed_prompts(subnet, model.dtype)
    return model, embeddings, tokenized, learnable, prompts


def measure(args, n_classes, chunk):
    """One forward + backward of the text branch in this process -> peak bytes and seconds."""
    import torch
    import torch.nn.functional as F

    from benchmarks.machine import PeakMemory, describe_machine
    from trainers.common import autocast

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model, embeddings, tokenized, learnable, prompts = build(args, n_classes, chunk)
    model.to(device)
    embeddings, tokenized = embeddings.to(device), tokenized.to(device)
    for p in learnable:
        p.data = p.data.to(device)
        p.requires_grad_(True)
    image_features = F.normalize(torch.randn(4, TEXT_SIZES["embed_dim"], device=device), dim=-1)
    labels = torch.randint(0, n_classes, (4,), device=device)

    meter = PeakMemory(device)
    meter.start()
    start = time.perf_counter()
    with autocast(args.precision, device):
        text_features = model.encode_text(embeddings, tokenized, prompts(device))
        logits = model.logits(image_features, text_features)  # (4, n_cls)
    F.cross_entropy(logits.float(), labels).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    grad_norm = float(sum(p.grad.float().norm() ** 2 for p in learnable if p.grad is not None) ** 0.5)
    return {
        "classes": n_classes, "chunk": chunk, "stage": args.stage, "impl": args.impl if args.stage == "search" else "",
        "precision": args.precision, "peak_bytes": meter.peak_bytes(), "peak_kind": meter.method,
        "seconds": seconds, "grad_norm": grad_norm, "machine": describe_machine(device.type),
    }


def child_argv(args, n_classes, chunk):
    return [sys.executable, os.path.abspath(__file__), "--one", "--classes", str(n_classes), "--chunks", str(chunk),
            "--stage", args.stage, "--impl", args.impl, "--n-ctx", str(args.n_ctx), "--device", args.device,
            "--precision", args.precision, "--text-layers", str(args.text_layers),
            "--threads", str(args.threads)]


def skip_reason(args, n_classes, chunk, done):
    """Why a measurement would not fit, from a smaller one of the same chunk size (linear in classes)."""
    from benchmarks.machine import mem_available_bytes

    smaller = [r for r in done if r.get("chunk") == chunk and "peak_bytes" in r and r["classes"] < n_classes]
    if not smaller:
        return None
    ref = max(smaller, key=lambda r: r["classes"])
    # Activations grow with the classes encoded at once: all of them, or one chunk (at most `chunk`).
    scale = n_classes / ref["classes"] if chunk <= 0 else min(n_classes, chunk) / min(ref["classes"], chunk)
    predicted = ref["peak_bytes"] * scale
    limit = args.max_gb * 2**30
    available = mem_available_bytes() if args.device == "cpu" else None
    if available is not None:
        limit = min(limit, 0.8 * available)
    if predicted > limit:
        return (f"predicted {predicted / 2**30:.1f} GiB (from {ref['classes']} classes x {scale:g}) exceeds the "
                f"limit {limit / 2**30:.1f} GiB (--max-gb {args.max_gb:g}"
                f"{f', 80% of MemAvailable {available / 2**30:.1f} GiB' if available is not None else ''})")
    return None


def main(argv=None):
    args = parse_args(argv)
    classes, chunks = int_list(args.classes, "--classes"), int_list(args.chunks, "--chunks")
    if args.one:
        print(json.dumps(measure(args, classes[0], chunks[0])))
        return None
    results = []
    print(f"text branch ({args.stage}{', ' + args.impl if args.stage == 'search' else ''}, N_CTX {args.n_ctx}, "
          f"{args.text_layers} blocks x 512, 77 tokens, {args.precision}, {args.device}): forward + backward",
          flush=True)
    for n_classes in sorted(classes):
        for chunk in chunks:
            label = f"{n_classes:5d} classes, {'no chunking' if chunk <= 0 else f'chunks of {chunk}':15s}"
            reason = skip_reason(args, n_classes, chunk, results)
            if reason:
                results.append({"classes": n_classes, "chunk": chunk, "skipped": reason})
                print(f"{label}: not measured: {reason}", flush=True)
                continue
            proc = subprocess.run(child_argv(args, n_classes, chunk), capture_output=True, text=True)
            if proc.returncode != 0:
                reason = f"the measurement failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
                results.append({"classes": n_classes, "chunk": chunk, "skipped": reason})
                print(f"{label}: not measured: {reason}", flush=True)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"{label}: {r['peak_bytes'] / 2**20:9.1f} MiB peak, {r['seconds']:7.2f} s  [{r['peak_kind']}]",
                  flush=True)
    measured = [r for r in results if "machine" in r]
    if measured:
        print(f"machine: {json.dumps(measured[-1]['machine'])}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"settings": vars(args), "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
