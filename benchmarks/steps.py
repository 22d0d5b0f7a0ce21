"""Train-step time and peak memory of every trainer, and evaluation throughput, with the exact
speed-ups on and off: the text tower cut after the last EOT token (``MODEL.TEXT_CUT_AFTER_EOT``)
and the class text features computed once per evaluation (``PromptedCLIP.cached_text_features``).

CLIP with ViT-B/16's architecture and random weights (no download); each method's own
``CustomCLIP`` built from the default config of its trainer; class names of 1 to 8 words (so the
longest prompt sets the cut, as real names do). A train step is what the base trainer does:
features -> head logits -> the head's loss terms -> backward -> SGD step (the search stage: an
alpha step, then a prompt step). Evaluation: ``--eval-batches`` batches of ``--eval-batch`` images
under no_grad, with the cut and the text cache (the text tower runs once, on the cut sequence) and
without either (the release's path: all 77 positions, once per batch).

    python benchmarks/steps.py                                   # every trainer, 100 classes, CPU
    python benchmarks/steps.py --trainers CoOp,TrainerSubnet --classes 100,1000 --cut on,off
    python benchmarks/steps.py --mode eval --classes 100,1000    # evaluation throughput
    python benchmarks/steps.py --device cuda --precision bf16 --markdown results.md

Every (trainer, classes, setting) runs in its own process, so its peak memory is its own
(benchmarks/machine.py: CUDA allocated memory, CPU resident-set growth). Times are wall-clock
medians: run it on an otherwise idle machine. Ratios compare each setting with the cut-off /
cache-off run of the same trainer and classes in the same invocation.
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TRAINERS = ("CoOp", "CoCoOp", "TrainerSupernet", "TrainerSubnet", "TrainerSubnetKD", "ZeroshotCLIP")
WORDS = ("red", "small", "north", "american", "spotted", "house", "sparrow", "garden", "lizard", "mountain",
         "sea", "tree", "golden", "retriever", "long", "horned")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["train", "eval"], default="train")
    p.add_argument("--trainers", default="CoOp,CoCoOp,TrainerSupernet,TrainerSubnet",
                   help=f"comma-separated, of {', '.join(TRAINERS)} (TrainerSubnetKD: KD_WEIGHT 1)")
    p.add_argument("--classes", default="100", help="comma-separated numbers of classes")
    p.add_argument("--cut", default="on,off", help="train mode: the EOT cut, comma-separated on/off")
    p.add_argument("--cache", default="on,off", help="eval mode: cut + text cache, comma-separated on/off")
    p.add_argument("--impl", default="fused", help="TrainerSupernet's IMPL (fused, fused_math, fused_kernel, naive)")
    p.add_argument("--baseline-impl", default="naive",
                   help="TrainerSupernet's IMPL in the cut-off run (the release's: naive)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["fp32", "amp", "bf16"], default="fp32")
    p.add_argument("--batch", type=int, default=4, help="training batch (and the search's validation batch)")
    p.add_argument("--n-ctx", type=int, default=6, help="context / prompt tokens (search: options 0..N)")
    p.add_argument("--eval-batch", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: torch's default)")
    p.add_argument("--arch", choices=["vit-b16", "tiny"], default="vit-b16", help="tiny: a smoke test only")
    p.add_argument("--markdown", default="", help="also write the table to this Markdown file")
    p.add_argument("--json", default="", help=argparse.SUPPRESS)  # child: one setting, as JSON
    return p.parse_args(argv)


def classnames(n):
    """n names of 1..8 words (deterministic)."""
    return [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(1 + i % 8)) for i in range(n)]


def build(args, trainer, n_classes, cut):
    import torch

    from clip.tiny import TINY_SIZES, VIT_B16_SIZES, build_random_clip
    from dassl.config import get_cfg_default
    from train import extend_cfg
    from trainers.common import cast_clip, text_cut

    cfg = get_cfg_default()
    extend_cfg(cfg)
    sizes = VIT_B16_SIZES if args.arch == "vit-b16" else TINY_SIZES["ViT"]
    clip_model = cast_clip(build_random_clip("ViT", seed=0, **sizes), "fp32").to(args.device)
    names = classnames(n_classes)
    n = args.n_ctx
    torch.manual_seed(0)
    with text_cut(cut):
        if trainer == "CoOp":
            from trainers.coop import CustomCLIP

            cfg.TRAINER.COOP.N_CTX = n
            model = CustomCLIP(cfg, names, clip_model)
        elif trainer == "CoCoOp":
            from trainers.cocoop import CustomCLIP

            cfg.TRAINER.COCOOP.N_CTX = n
            model = CustomCLIP(cfg, names, clip_model)
        elif trainer == "TrainerSupernet":
            from trainers.trainersupernet import CustomCLIP

            opts = cfg.TRAINER.TRAINERSUPERNET
            opts.N_CTX_VISION = opts.N_CTX_TEXT = n
            opts.IMPL = args.impl if cut else args.baseline_impl
            model = CustomCLIP(cfg, names, clip_model)
        elif trainer.startswith("TrainerSubnet"):
            from trainers.trainersubnet import CustomCLIP

            if trainer == "TrainerSubnetKD":
                cfg.TRAINER.TRAINERSUBNET.KD_WEIGHT = 1.0
            blocks = {"image": len(clip_model.visual.transformer.resblocks),
                      "text": len(clip_model.transformer.resblocks)}
            model = CustomCLIP(cfg, names, clip_model, {b: [n] * k for b, k in blocks.items()})
        elif trainer == "ZeroshotCLIP":
            from datasets.templates import IMAGENET_TEMPLATES_SELECT
            from trainers.zsclip import CustomCLIP

            model = CustomCLIP(clip_model, IMAGENET_TEMPLATES_SELECT, names, "fp32", args.device)
        else:
            raise SystemExit(f"unknown trainer {trainer!r}; expected one of {', '.join(TRAINERS)}")
    model.requires_grad_(False)
    learnable = [p for p in model.prompt_learner.parameters() if p.numel() > 0]
    for p in learnable:
        p.requires_grad_(True)
    return model.to(args.device)


def run_setting(args, trainer, n_classes, setting):
    """Time one (trainer, classes, setting) in this process -> dict."""
    import torch

    from benchmarks.machine import PeakMemory, describe_machine
    from trainers.common import autocast

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    on = setting == "on"
    model = build(args, trainer, n_classes, cut=on)  # eval "off": no cache and no cut (the release's path)
    size = model.image_encoder.input_resolution
    g = torch.Generator().manual_seed(1)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if args.mode == "train":
        if trainer == "ZeroshotCLIP":
            raise SystemExit("ZeroshotCLIP has no train step: use --mode eval")
        pl = model.prompt_learner
        searching = trainer == "TrainerSupernet"
        groups = {"prompt": pl.prompt_parameters(), "alpha": pl.alpha_parameters()} if searching else {
            "prompt": [p for p in pl.parameters() if p.requires_grad]}
        optims = {k: torch.optim.SGD(v, lr=1e-3, momentum=0.9) for k, v in groups.items()}
        image = torch.randn(args.batch, 3, size, size, generator=g).to(device)
        label = torch.randint(0, n_classes, (args.batch,), generator=g).to(device)
        head = model.head

        def step(kind):
            for name, params in groups.items():
                for p in params:
                    p.requires_grad_(name == kind)
            with autocast(args.precision, device):
                features = model.forward_features(image, extras=head.wants)
            logits = head.logits(features)
            terms = head.losses(features, logits, label)
            loss = sum(head.weights[name] * value for name, value in terms.items())
            optims[kind].zero_grad(set_to_none=True)
            loss.backward()
            optims[kind].step()

        def work():
            for kind in (("alpha", "prompt") if searching else ("prompt",)):
                step(kind)
            sync()
        images_per_call = args.batch
    else:
        images = [torch.randn(args.eval_batch, 3, size, size, generator=g).to(device)
                  for _ in range(args.eval_batches)]

        def work():
            with torch.no_grad(), (model.cached_text_features() if on else contextlib.nullcontext()):
                for image in images:
                    with autocast(args.precision, device):
                        model(image)
            sync()
        images_per_call = args.eval_batch * args.eval_batches

    meter = PeakMemory(device)
    meter.start()
    for _ in range(args.warmup):
        work()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    peak = meter.peak_bytes()
    result = {
        "trainer": trainer, "classes": n_classes, "mode": args.mode, "setting": setting,
        "median_s": statistics.median(times), "times_s": [round(t, 4) for t in times],
        "images_per_s": images_per_call / statistics.median(times), "peak_bytes": int(peak),
        "peak_kind": meter.method, "precision": args.precision,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "machine": describe_machine(device.type),
    }
    if args.mode == "eval":  # where the time goes: one image batch alone, one text pass alone
        with torch.no_grad(), autocast(args.precision, device):
            start = time.perf_counter()
            model.encode_image(images[0])
            sync()
            result["image_batch_s"] = time.perf_counter() - start
            start = time.perf_counter()
            model.class_text_features(None)
            sync()
            result["text_pass_s"] = time.perf_counter() - start
    return result



def _mib(n):
    return f"{n / 2 ** 20:,.0f} MiB"


def table(args, results):
    """Markdown rows: one per (trainer, classes), settings side by side with their ratio."""
    key = "cut" if args.mode == "train" else "cut + text cache"
    lines = [f"| trainer | classes | {key} on | {key} off | on / off |", "|---|---|---|---|---|"]
    by = {}
    for r in results:
        by.setdefault((r["trainer"], r["classes"]), {})[r["setting"]] = r
    for (trainer, classes), settings in by.items():
        cells = []
        for s in ("on", "off"):
            r = settings.get(s)
            if r is None:
                cells.append("-")
            elif "error" in r:
                cells.append(f"failed: {r['error']}")
            elif args.mode == "train":
                cells.append(f"{r['median_s']:.3f} s/step, {_mib(r['peak_bytes'])}")
            else:
                cells.append(f"{r['images_per_s']:.1f} img/s (image batch {r['image_batch_s']:.2f} s, "
                             f"text pass {r['text_pass_s']:.2f} s)")
        on, off = settings.get("on"), settings.get("off")
        if on and off and "error" not in on and "error" not in off:
            if args.mode == "train":
                ratio = (f"time {on['median_s'] / off['median_s']:.3f}x, memory "
                         f"{on['peak_bytes'] / max(off['peak_bytes'], 1):.3f}x")
            else:
                ratio = f"throughput {on['images_per_s'] / off['images_per_s']:.2f}x"
        else:
            ratio = "-"
        name = trainer if trainer != "TrainerSupernet" or args.mode == "eval" else \
            f"TrainerSupernet ({args.impl} vs {args.baseline_impl})"
        lines.append(f"| {name} | {classes} | {cells[0]} | {cells[1]} | {ratio} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.json:
        trainer, classes, setting = args.json.split(":")
        print(json.dumps(run_setting(args, trainer, int(classes), setting)))
        return None
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = (args.cut if args.mode == "train" else args.cache).split(",")
    results = []
    for trainer in args.trainers.split(","):
        for classes in args.classes.split(","):
            for setting in settings:
                child = [sys.executable, os.path.abspath(__file__), *argv, "--json", f"{trainer}:{classes}:{setting}"]
                proc = subprocess.run(child, capture_output=True, text=True, cwd=ROOT)
                if proc.returncode != 0:
                    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                    result = {"trainer": trainer, "classes": int(classes), "setting": setting, "error": tail[:120]}
                else:
                    result = json.loads(proc.stdout.strip().splitlines()[-1])
                results.append(result)
                print(json.dumps(result), flush=True)
    text = table(args, results)
    machine = next((r["machine"] for r in results if "machine" in r), {})
    device = next((r["device"] for r in results if "device" in r), args.device)
    header = (f"{args.mode} on {device}, {args.precision}, batch {args.batch if args.mode == 'train' else args.eval_batch}"
              f", N_CTX {args.n_ctx}, {args.repeats} timed after {args.warmup} warm-up; machine: {json.dumps(machine)}")
    print(header)
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(f"{header}\n\n{text}\n\n")
    return results


if __name__ == "__main__":
    main()
