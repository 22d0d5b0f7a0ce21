"""Benchmark one DPL search iteration (alpha step + prompt step) of the supernet.

Builds CLIP with ViT-B/16's architecture and random weights (no download), a supernet over all
24 blocks with options 0..N_CTX, and times full iterations: an alpha step on a validation batch
(Adam) then a prompt step on a training batch (SGD), exactly as TrainerSupernet does.

    python benchmarks/search_step.py                       # naive and fused, CPU, ratio printed
    python benchmarks/search_step.py --device cuda --precision bf16 --impl fused

Each implementation runs in its own process so that peak memory is its own: on CUDA the peak
of allocated memory during the steps above the memory after building the model; on CPU the
growth of the resident set size during the steps over the RSS after building the model (its
high-water mark reset then; see benchmarks/machine.py), which includes allocator overhead.
Run it on an otherwise idle machine: times are wall-clock. ``--arch tiny`` (a two-block CLIP)
only checks that the script runs.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ARCHS = ("vit-b16", "tiny")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["naive", "fused", "fused_math", "fused_kernel", "both"], default="both",
                        help="both: naive and fused (fused_math on CPU, fused_kernel on CUDA)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "amp", "bf16"], default="fp32")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--batch", type=int, default=4, help="training batch of the prompt step")
    parser.add_argument("--val-batch", type=int, default=None, help="validation batch of the alpha step (default: --batch)")
    parser.add_argument("--n-ctx", type=int, default=6, help="options 0..N per block, both branches")
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: torch's default)")
    parser.add_argument("--arch", choices=sorted(ARCHS), default="vit-b16",
                        help="CLIP architecture (random weights); tiny: a smoke test only")
    parser.add_argument("--profile", type=int, default=0, metavar="ROWS",
                        help="after timing, profile one more iteration (torch.profiler) and print the ROWS "
                             "ops with the most self time to stderr; needs --impl naive or fused")
    parser.add_argument("--json", action="store_true", help="print one JSON line (used between processes)")
    return parser.parse_args(argv)


def build(args, impl):
    import torch

    from clip.tiny import TINY_SIZES, VIT_B16_SIZES, build_random_clip
    from dassl.config import get_cfg_default
    from train import extend_cfg
    from trainers.common import cast_clip
    from trainers.trainersupernet import CustomCLIP

    cfg = get_cfg_default()
    extend_cfg(cfg)
    opts = cfg.TRAINER.TRAINERSUPERNET
    opts.N_CTX_VISION = opts.N_CTX_TEXT = args.n_ctx
    opts.IMPL = impl
    sizes = VIT_B16_SIZES if args.arch == "vit-b16" else TINY_SIZES["ViT"]
    clip_model = cast_clip(build_random_clip("ViT", seed=0, **sizes), "fp32")
    classnames = [f"class number {i}" for i in range(args.classes)]
    model = CustomCLIP(cfg, classnames, clip_model)
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith("prompt_learner."))
    return model.to(args.device), opts


def run_one(args, impl):
    """Time ``args.repeats`` search iterations of one implementation in this process."""
    import torch
    import torch.nn.functional as F

    from benchmarks.machine import PeakMemory, describe_machine
    from trainers.common import autocast, make_grad_scaler

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model, opts = build(args, impl)
    pl = model.prompt_learner
    prompts, alphas = pl.prompt_parameters(), pl.alpha_parameters()
    prompt_optim = torch.optim.SGD(prompts, lr=0.0035, momentum=0.9, weight_decay=5e-4)
    alpha_optim = torch.optim.Adam(alphas, lr=opts.ALPHA_LR, betas=tuple(opts.ALPHA_BETAS))
    scalers = {"alpha": make_grad_scaler(args.precision, device), "prompt": make_grad_scaler(args.precision, device)}
    val_batch = args.val_batch or args.batch
    size = model.image_encoder.input_resolution
    data = {
        "alpha": (torch.randn(val_batch, 3, size, size, device=device),
                  torch.randint(0, args.classes, (val_batch,), device=device)),
        "prompt": (torch.randn(args.batch, 3, size, size, device=device),
                   torch.randint(0, args.classes, (args.batch,), device=device)),
    }

    def step(kind, params, others, optim):
        for p in others:
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        image, label = data[kind]
        with autocast(args.precision, device):
            logits = model(image)
        loss = F.cross_entropy(logits.float(), label)
        optim.zero_grad(set_to_none=True)
        if scalers[kind] is None:
            loss.backward()
            optim.step()
        else:
            scalers[kind].scale(loss).backward()
            scalers[kind].step(optim)
            scalers[kind].update()

    def iteration():
        step("alpha", alphas, prompts, alpha_optim)
        step("prompt", prompts, alphas, prompt_optim)
        if device.type == "cuda":
            torch.cuda.synchronize()

    # Baseline before the first step: the peak then includes the steps' activations and gradients.
    meter = PeakMemory(device)
    meter.start()
    for _ in range(args.warmup):
        iteration()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - start)
    peak = meter.peak_bytes()
    if args.profile:
        print_profile(iteration, device, args.profile)
    return {
        "impl": impl,
        "median_s": statistics.median(times),
        "times_s": [round(t, 4) for t in times],
        "peak_bytes": int(peak),
        "peak_kind": meter.method,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "precision": args.precision,
        "settings": {"arch": args.arch, "classes": args.classes, "batch": args.batch,
                     "val_batch": args.val_batch or args.batch, "n_ctx": args.n_ctx},
        "machine": describe_machine(device.type),  # load average at the end of the run
    }


def print_profile(iteration, device, rows):
    """One iteration under torch.profiler: the ops with the most self time (stderr)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        iteration()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=rows), file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.profile and args.impl == "both":
        raise SystemExit("--profile needs one implementation: add --impl naive or --impl fused")
    if args.impl != "both":
        result = run_one(args, args.impl)
        print(json.dumps(result) if args.json else format_result(result))
        return result
    # Each implementation in its own process: its peak memory and allocator state are its own.
    results = {}
    for impl in ("naive", "fused"):
        child = [sys.executable, os.path.abspath(__file__)] + child_args(
            argv if argv is not None else sys.argv[1:]
        ) + ["--impl", impl, "--json"]
        proc = subprocess.run(child, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"the {impl} run failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        results[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(format_result(results[impl]), flush=True)
    time_ratio = results["fused"]["median_s"] / results["naive"]["median_s"]
    mem_ratio = results["fused"]["peak_bytes"] / max(results["naive"]["peak_bytes"], 1)
    print(f"fused/naive: time {time_ratio:.3f}x, peak memory {mem_ratio:.3f}x "
          f"(goal: <= 0.4x time, <= 0.5x memory)")
    print(f"machine: {json.dumps(results['fused']['machine'])}")
    return results


def child_args(argv):
    """The parent's arguments without --impl (any form) and --json: the child gets its own."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--impl":
            skip = True
        elif not (a.startswith("--impl=") or a == "--json"):
            out.append(a)
    return out


def format_result(r):
    return (f"{r['impl']:>5}: {r['median_s'] * 1000:9.1f} ms/iteration (median of {len(r['times_s'])}), "
            f"{r['peak_bytes'] / 2**20:8.1f} MiB {r['peak_kind']}  [{r['device']}, {r['torch_threads']} threads]")


if __name__ == "__main__":
    main()
