"""Where an evaluation's time goes: data loading, the image tower, the text tower, the rest.

A real ``train.py`` evaluation (``trainer.test()``) of a trainer on the generated Toy dataset
(images written as JPEG files at ``--image-size`` and read back through the engine's loader and
test transform), with CLIP of ViT-B/16's architecture and random weights saved once into the work
folder. Timed: the whole ``test()``; the image tower and the text tower (forward hooks, CUDA
synchronised); the data loader alone (a second pass over the test loader that only fetches
batches). "Other" is what is left: the head, the evaluator, the progress bar, and the loader's
waits that overlap with neither tower.

    python benchmarks/eval_profile.py --trainer CoOp --classes 8 --images-per-class 60
    python benchmarks/eval_profile.py --trainer TrainerSubnet --no-cache      # the text tower per batch
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trainer", default="CoOp", choices=["CoOp", "TrainerSubnet", "ZeroshotCLIP"])
    p.add_argument("--classes", type=int, default=8, help="Toy classes (1..8)")
    p.add_argument("--images-per-class", type=int, default=60)
    p.add_argument("--image-size", type=int, default=224, help="pixels of the generated JPEG files")
    p.add_argument("--batch", type=int, default=100, help="DATALOADER.TEST.BATCH_SIZE (the release's 100)")
    p.add_argument("--workers", type=int, default=2, help="DATALOADER.NUM_WORKERS")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--no-cache", action="store_true", help="evaluate without the class text cache")
    p.add_argument("--arch", choices=["vit-b16", "tiny"], default="vit-b16", help="tiny: a smoke test only")
    p.add_argument("--work-dir", default="", help="keep data and weights here (default: a temporary folder)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    import train
    from clip.tiny import VIT_B16_SIZES, save_tiny_clip
    from dassl.utils import Logger

    work = args.work_dir or tempfile.mkdtemp(prefix="eval_profile_")
    os.makedirs(work, exist_ok=True)
    sizes = VIT_B16_SIZES if args.arch == "vit-b16" else {}
    resolution = 224 if args.arch == "vit-b16" else 32
    weights = os.path.join(work, f"clip_{args.arch}.pt")
    if not os.path.exists(weights):
        save_tiny_clip(weights, "ViT", seed=0, **sizes)
    argv = ["--root", os.path.join(work, "data"), "--trainer", args.trainer, "--output-dir", os.path.join(work, "out"),
            "--dataset-config-file", os.path.join(ROOT, "configs", "datasets", "toy.yaml"), "--no-train", "--seed", "1",
            "MODEL.BACKBONE.PATH", weights, "INPUT.SIZE", f"({resolution}, {resolution})",
            "DATASET.TOY.NUM_CLASSES", str(args.classes), "DATASET.TOY.IMAGES_PER_CLASS", str(args.images_per_class),
            "DATASET.TOY.IMAGE_SIZE", str(args.image_size), "DATALOADER.TEST.BATCH_SIZE", str(args.batch),
            "DATALOADER.NUM_WORKERS", str(args.workers), "USE_CUDA", str(args.device == "cuda")]
    if args.trainer == "TrainerSubnet":
        config = os.path.join(work, "config.json")
        with open(config, "w") as f:
            json.dump({"image": {"prompt_lengths": [4] * 12}, "text": {"prompt_lengths": [4] * 12}}
                      if args.arch == "vit-b16" else {"image": {"prompt_lengths": [4]}, "text": {"prompt_lengths": [4]}}, f)
        argv += ["TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config]
    if args.trainer == "ZeroshotCLIP":
        argv += ["TRAINER.ZSCLIP.PREC", "fp32"]
    stdout = sys.stdout
    try:
        trainer = train.main(train.get_parser().parse_args(argv))
    finally:
        if isinstance(sys.stdout, Logger):
            sys.stdout.close()
        sys.stdout = stdout
    model = trainer.model
    device = torch.device(trainer.device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    spent = {"image": 0.0, "text": 0.0}

    def timed(name, module):
        def before(*_):
            sync()
            module._started = time.perf_counter()

        def after(*_):
            sync()
            spent[name] += time.perf_counter() - module._started

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)

    timed("image", model.image_encoder)
    timed("text", model.text_encoder)
    if args.no_cache:
        model.cached_text_features = contextlib.nullcontext  # one text pass per batch
    trainer.test()  # warm-up (worker start, first allocations)
    spent.update(image=0.0, text=0.0)
    start = time.perf_counter()
    trainer.test()
    total = time.perf_counter() - start
    start = time.perf_counter()
    n_images = 0
    for batch in trainer.test_loader:
        n_images += len(batch["img"])
    loading = time.perf_counter() - start
    other = total - spent["image"] - spent["text"]
    result = {"trainer": args.trainer, "images": n_images, "classes": args.classes, "batch": args.batch,
              "workers": args.workers, "cache": not args.no_cache, "total_s": total, "image_s": spent["image"],
              "text_s": spent["text"], "other_s": other, "loader_alone_s": loading,
              "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "torch_threads": torch.get_num_threads()}
    print(json.dumps(result))
    print(f"{args.trainer}: {n_images} images in {total:.2f} s ({n_images / total:.1f} img/s): image tower "
          f"{spent['image'] / total:.0%}, text tower {spent['text'] / total:.0%}, other {other / total:.0%}; "
          f"the loader alone takes {loading:.2f} s ({loading / total:.0%} of the evaluation's time)")
    return result


if __name__ == "__main__":
    main()
