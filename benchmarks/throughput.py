"""Images per second of DPL's search stage (TrainerSupernet) and training stage (TrainerSubnet).

Each stage runs as a real ``train.py`` under ``python -m torch.distributed.run --standalone
--nproc_per_node=K`` for every K of ``--nproc``, on the generated Toy dataset with a small
random-weight CLIP written once into the work folder (no download). The throughput is read from
rank 0's log: the per-batch ``time`` values (data loading included, NUM_WORKERS 0) of every epoch
but the first (warm-up), and the global batch K x BATCH_SIZE:

    train images/s = batches x K x BATCH_SIZE / sum(batch times)

A search iteration also runs an alpha step on a validation batch (VAL_BATCH_SIZE per process);
``all images/s`` counts those too. Epoch-end work (alpha files, heat-maps, checkpoints) and the
final test are outside the per-batch times.

    python benchmarks/throughput.py                          # CPU, K = 1 and 2, both stages
    python benchmarks/throughput.py --device cuda --nproc 1,2,4,8

On CPU each process gets OMP_NUM_THREADS = cores // K (``--threads`` overrides), so K processes
share the same cores: more processes only help when the cores are not already busy.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

STAGES = ("search", "train")
TRAINERS = {"search": "TrainerSupernet", "train": "TrainerSubnet"}
BATCH_LINE = re.compile(r"epoch \[(\d+)/(\d+)\] batch \[(\d+)/(\d+)\] time ([0-9.]+) \(")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", default="1,2", help="comma-separated numbers of processes (default 1,2)")
    p.add_argument("--stages", default="search,train", help="comma-separated: search, train")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: one GPU per process, NCCL")
    p.add_argument("--precision", choices=["fp32", "amp", "bf16"], default="fp32")
    p.add_argument("--epochs", type=int, default=3, help="the first is warm-up and not counted")
    p.add_argument("--batch", type=int, default=4, help="training batch per process")
    p.add_argument("--val-batch", type=int, default=4, help="validation batch per process (search)")
    p.add_argument("--classes", type=int, default=8, help="Toy classes (1..8)")
    p.add_argument("--shots", type=int, default=8, help="training images per class")
    p.add_argument("--n-ctx", type=int, default=4, help="search options 0..N; the subnet gets N tokens")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--vision-width", type=int, default=256)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--text-width", type=int, default=256)
    p.add_argument("--text-layers", type=int, default=4)
    p.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS per process (0: cores // K on CPU)")
    p.add_argument("--work-dir", default="", help="keep data, weights and logs here (default: a temp folder)")
    p.add_argument("--json-out", default="", help="also write the results to this JSON file")
    return p.parse_args(argv)


def int_list(text, name):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"{name} must be comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise SystemExit(f"{name} needs integers >= 1, got {text!r}")
    return values


def write_inputs(args, work):
    """The random CLIP and the subnet's prompt configuration (fixed, so runs are comparable)."""
    from clip.tiny import save_tiny_clip

    weights = os.path.join(work, "clip.pt")
    if not os.path.isfile(weights):
        save_tiny_clip(weights, "ViT", seed=0, embed_dim=min(args.vision_width, args.text_width),
                       image_resolution=args.image_size, vision_patch_size=args.patch,
                       vision_width=args.vision_width, vision_layers=args.vision_layers,
                       transformer_width=args.text_width, transformer_layers=args.text_layers)
    # N tokens in the first three quarters of the blocks, as the paper's hand-made design.
    def lengths(blocks):
        return [args.n_ctx if b < max(1, blocks * 3 // 4) else 0 for b in range(blocks)]

    config = os.path.join(work, "prompt_config.json")
    with open(config, "w") as f:
        json.dump({"image": {"prompt_lengths": lengths(args.vision_layers)},
                   "text": {"prompt_lengths": lengths(args.text_layers)}}, f)
    return weights, config


def command(args, stage, k, work, weights, config):
    trainer = TRAINERS[stage]
    out = os.path.join(work, f"{stage}_k{k}")
    shutil.rmtree(out, ignore_errors=True)  # a leftover checkpoint would resume instead of training
    argv = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={k}",
        os.path.join(ROOT, "train.py"), "--root", os.path.join(work, "data"), "--seed", "1",
        "--trainer", trainer, "--output-dir", out,
        "--dataset-config-file", os.path.join(ROOT, "configs", "datasets", "toy.yaml"),
        "--config-file", os.path.join(ROOT, "configs", "trainers", trainer, "fewshot.yaml"),
        "MODEL.BACKBONE.PATH", weights, "USE_CUDA", str(args.device == "cuda"),
        "INPUT.SIZE", f"({args.image_size}, {args.image_size})",
        "DATASET.TOY.IMAGE_SIZE", str(args.image_size), "DATASET.TOY.NUM_CLASSES", str(args.classes),
        "DATASET.TOY.IMAGES_PER_CLASS", str(max(24, 3 * args.shots)), "DATASET.NUM_SHOTS", str(args.shots),
        "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", str(args.batch),
        "OPTIM.MAX_EPOCH", str(args.epochs), "TRAIN.PRINT_FREQ", "1", "TEST.NO_TEST", "True",
    ]
    key = f"TRAINER.{trainer.upper()}"
    argv += [f"{key}.PREC", args.precision]
    if stage == "search":
        argv += [f"{key}.N_CTX_VISION", str(args.n_ctx), f"{key}.N_CTX_TEXT", str(args.n_ctx),
                 f"{key}.VAL_BATCH_SIZE", str(args.val_batch)]
    else:
        argv += [f"{key}.PROMPT_CONFIG", config, f"{key}.CTX_INIT", "default"]
    return argv, out


def parse_log(text, k, batch, val_batch):
    """Per-batch times of rank 0 after the first epoch -> images/s (train only, and train + val)."""
    times = [float(m.group(5)) for m in BATCH_LINE.finditer(text) if int(m.group(1)) > 1]
    if not times:
        raise ValueError("no per-batch lines after epoch 1 in the log (expected 'epoch [e/E] batch [b/B] time t (avg)'"
                         "); use --epochs >= 2 and check the run's log.txt")
    total = sum(times)
    return {
        "batches": len(times),
        "mean_batch_s": total / len(times),
        "train_images_per_s": len(times) * k * batch / total,
        "all_images_per_s": len(times) * k * (batch + val_batch) / total,
    }


def run_stage(args, stage, k, work, weights, config):
    argv, out = command(args, stage, k, work, weights, config)
    env = dict(os.environ)
    if args.threads or args.device == "cpu":
        env["OMP_NUM_THREADS"] = str(args.threads or max(1, (os.cpu_count() or 1) // k))
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{stage} with {k} process(es) failed (exit {done.returncode}); command:\n"
                           f"{' '.join(argv)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    with open(os.path.join(out, "log.txt")) as f:
        result = parse_log(f.read(), k, args.batch, args.val_batch if stage == "search" else 0)
    result.update({"stage": stage, "nproc": k, "wall_s": wall, "omp_threads": env.get("OMP_NUM_THREADS", "")})
    return result


def main(argv=None):
    args = parse_args(argv)
    nprocs = int_list(args.nproc, "--nproc")
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if not stages or set(stages) - set(STAGES):
        raise SystemExit(f"--stages takes a comma-separated subset of {STAGES}, got {args.stages!r}")
    if args.epochs < 2:
        raise SystemExit("--epochs must be >= 2: the first epoch is warm-up and not counted")
    from benchmarks.machine import describe_machine

    work = args.work_dir or tempfile.mkdtemp(prefix="dpl-throughput-")
    os.makedirs(work, exist_ok=True)
    weights, config = write_inputs(args, work)
    results = []
    print(f"{'stage':7s} {'K':>2s} {'threads':>7s} {'batches':>7s} {'s/batch':>8s} {'train img/s':>11s} "
          f"{'all img/s':>9s} {'wall s':>7s}", flush=True)
    for stage in stages:
        for k in nprocs:
            r = run_stage(args, stage, k, work, weights, config)
            results.append(r)
            print(f"{stage:7s} {k:2d} {r['omp_threads']:>7s} {r['batches']:7d} {r['mean_batch_s']:8.3f} "
                  f"{r['train_images_per_s']:11.2f} {r['all_images_per_s']:9.2f} {r['wall_s']:7.1f}", flush=True)
    machine = describe_machine(args.device)
    print(f"machine: {json.dumps(machine)}")
    if args.work_dir:
        print(f"data, weights and logs kept in {work}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"settings": vars(args), "machine": machine, "results": results}, f, indent=1)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
