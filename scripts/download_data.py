"""Download the CoOp datasets into the layout the readers expect (docs/DATASETS.md).

    python scripts/download_data.py --root $DATA --dry-run all       # print the plan only
    python scripts/download_data.py --root $DATA OxfordPets EuroSAT  # fetch, check, extract

Each dataset is a list of steps (data below): fetch a file (HTTP with resume, or Google Drive via
gdown), extract an archive, move a folder, or a manual instruction (ImageNet needs a login, the
Stanford Cars host is gone). A step whose result already exists is skipped, so an interrupted run
can simply be started again; a partly downloaded file is continued with an HTTP Range request.

A split the readers rebuilt because the published ``split_zhou_<Name>.json`` was missing is saved
as ``split_rebuilt_<Name>.json``; the plan and the download both say when one is in use (it is not
the published split: results are not comparable with the papers') or left over beside the
published file (which the readers then use).
"""

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass

GDRIVE = "gdrive:"
# The names of datasets/common.py (not imported: it pulls in torch, which this script does not need)
PUBLISHED_PREFIX = "split_zhou_"
REBUILT_PREFIX = "split_rebuilt_"


@dataclass(frozen=True)
class Fetch:
    url: str  # http(s)://, file:// or gdrive:<file id>
    dest: str  # relative to --root
    md5: str = ""  # checked after download when known


@dataclass(frozen=True)
class Extract:
    archive: str  # relative to --root
    into: str  # folder to extract into, relative to --root
    creates: str  # a path the archive creates: when it exists the step is done


@dataclass(frozen=True)
class Move:
    src: str
    dst: str


@dataclass(frozen=True)
class Manual:
    text: str


def _gdrive_split(folder, name, file_id):
    return Fetch(GDRIVE + file_id, f"{folder}/split_zhou_{name}.json")


VGG = "https://www.robots.ox.ac.uk/~vgg/data"
PLANS = {
    "ImageNet": [
        Manual("ImageNet needs an account: download ILSVRC2012 train/val from https://image-net.org and put the "
               "class folders in imagenet/images/train/ and imagenet/images/val/ (val sorted into class folders)."),
        Fetch(GDRIVE + "1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF", "imagenet/classnames.txt"),
    ],
    "Caltech101": [
        Fetch("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip", "caltech-101.zip",
              "3138e1922a9193bfa496528edbbc45d0"),
        # the zip holds caltech-101/101_ObjectCategories.tar.gz
        Extract("caltech-101.zip", ".", "caltech-101/101_ObjectCategories.tar.gz"),
        Extract("caltech-101/101_ObjectCategories.tar.gz", "caltech-101", "caltech-101/101_ObjectCategories"),
        _gdrive_split("caltech-101", "Caltech101", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN"),
    ],
    "OxfordPets": [
        Fetch(f"{VGG}/pets/data/images.tar.gz", "oxford_pets/images.tar.gz", "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
        Extract("oxford_pets/images.tar.gz", "oxford_pets", "oxford_pets/images"),
        Fetch(f"{VGG}/pets/data/annotations.tar.gz", "oxford_pets/annotations.tar.gz",
              "95a8c909bbe2e81eed6a22bccdf3f68f"),
        Extract("oxford_pets/annotations.tar.gz", "oxford_pets", "oxford_pets/annotations"),
        _gdrive_split("oxford_pets", "OxfordPets", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs"),
    ],
    "StanfordCars": [
        Manual("The original Stanford host (ai.stanford.edu/~jkrause/cars) is offline: get cars_train/, "
               "cars_test/, devkit/ and cars_test_annos_withlabels.mat from a mirror and put them in "
               "stanford_cars/ (see docs/DATASETS.md#stanfordcars)."),
        _gdrive_split("stanford_cars", "StanfordCars", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT"),
    ],
    "OxfordFlowers": [
        Fetch(f"{VGG}/flowers/102/102flowers.tgz", "oxford_flowers/102flowers.tgz",
              "52808999861908f626f3c1f4e79d11fa"),
        Extract("oxford_flowers/102flowers.tgz", "oxford_flowers", "oxford_flowers/jpg"),
        Fetch(f"{VGG}/flowers/102/imagelabels.mat", "oxford_flowers/imagelabels.mat",
              "e0620be6f572b9609742df49c70aed4d"),
        Fetch(GDRIVE + "1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0", "oxford_flowers/cat_to_name.json"),
        _gdrive_split("oxford_flowers", "OxfordFlowers", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT"),
    ],
    "Food101": [
        Fetch("http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz", "food-101.tar.gz",
              "85eeb15f3717b99a5da872d97d918f87"),
        Extract("food-101.tar.gz", ".", "food-101/images"),
        _gdrive_split("food-101", "Food101", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl"),
    ],
    "FGVCAircraft": [
        Fetch(f"{VGG}/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz", "fgvc-aircraft-2013b.tar.gz"),
        Extract("fgvc-aircraft-2013b.tar.gz", ".", "fgvc-aircraft-2013b/data"),
        Move("fgvc-aircraft-2013b/data", "fgvc_aircraft"),
    ],
    "SUN397": [
        Fetch("http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz", "sun397/SUN397.tar.gz",
              "8ca2778205c41d23104230ba66911c7a"),
        Extract("sun397/SUN397.tar.gz", "sun397", "sun397/SUN397"),
        _gdrive_split("sun397", "SUN397", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq"),
    ],
    "DescribableTextures": [
        Fetch(f"{VGG}/dtd/download/dtd-r1.0.1.tar.gz", "dtd-r1.0.1.tar.gz", "fff73e5086ae6bdbea199a49dfb8a4c1"),
        Extract("dtd-r1.0.1.tar.gz", ".", "dtd/images"),
        _gdrive_split("dtd", "DescribableTextures", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x"),
    ],
    "EuroSAT": [
        Fetch("https://huggingface.co/datasets/torchgeo/eurosat/resolve/c877bcd43f099cd0196738f714544e355477f3fd/"
              "EuroSAT.zip", "eurosat/EuroSAT.zip", "c8fa014336c82ac7804f0398fcb19387"),
        Extract("eurosat/EuroSAT.zip", "eurosat", "eurosat/2750"),
        _gdrive_split("eurosat", "EuroSAT", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o"),
    ],
    "UCF101": [
        Fetch(GDRIVE + "10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O", "ucf101/UCF-101-midframes.zip"),
        Extract("ucf101/UCF-101-midframes.zip", "ucf101", "ucf101/UCF-101-midframes"),
        _gdrive_split("ucf101", "UCF101", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y"),
    ],
    "ImageNetV2": [
        Fetch("https://s3-us-west-2.amazonaws.com/imagenetv2public/imagenetv2-matched-frequency.tar.gz",
              "imagenetv2/imagenetv2-matched-frequency.tar.gz"),
        Extract("imagenetv2/imagenetv2-matched-frequency.tar.gz", "imagenetv2",
                "imagenetv2/imagenetv2-matched-frequency-format-val"),
    ],
    "ImageNetSketch": [
        Manual("Download ImageNet-Sketch from https://github.com/HaohanWang/ImageNet-Sketch (Google Drive, "
               "Kaggle or Hugging Face links there) and put its 1000 class folders in imagenet-sketch/images/."),
    ],
    "ImageNetA": [
        Fetch("https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar", "imagenet-adversarial/imagenet-a.tar"),
        Extract("imagenet-adversarial/imagenet-a.tar", "imagenet-adversarial", "imagenet-adversarial/imagenet-a"),
    ],
    "ImageNetR": [
        Fetch("https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar", "imagenet-rendition/imagenet-r.tar"),
        Extract("imagenet-rendition/imagenet-r.tar", "imagenet-rendition", "imagenet-rendition/imagenet-r"),
    ],
}


def is_done(step, root, plan=()):
    """Whether the step's result is already on disk (so a rerun skips it).

    A fetched archive counts as done once a step of ``plan`` has extracted it (the archive
    itself is deleted after extraction).
    """
    if isinstance(step, Fetch):
        extracted = any(isinstance(s, Extract) and s.archive == step.dest and is_done(s, root) for s in plan)
        return extracted or os.path.exists(os.path.join(root, step.dest))
    if isinstance(step, Extract):
        return os.path.exists(os.path.join(root, step.creates))
    if isinstance(step, Move):
        return os.path.exists(os.path.join(root, step.dst)) and not os.path.exists(os.path.join(root, step.src))
    return False


def describe(step):
    if isinstance(step, Fetch):
        check = f" (md5 {step.md5})" if step.md5 else ""
        return f"fetch {step.url} -> {step.dest}{check}"
    if isinstance(step, Extract):
        return f"extract {step.archive} into {step.into}/"
    if isinstance(step, Move):
        return f"move {step.src} -> {step.dst}"
    return f"manual: {step.text}"


def rebuilt_split_note(step, root):
    """For the fetch of a published split file: a note on the rebuilt split beside it, or "".

    A rebuilt split in use (no published file) is NOT the published split; one left over next to
    the published file is ignored by the readers.
    """
    if not isinstance(step, Fetch):
        return ""
    folder, base = os.path.split(step.dest)
    if not base.startswith(PUBLISHED_PREFIX):
        return ""
    rebuilt = os.path.join(folder, REBUILT_PREFIX + base[len(PUBLISHED_PREFIX):])
    if not os.path.exists(os.path.join(root, rebuilt)):
        return ""
    if os.path.exists(os.path.join(root, step.dest)):
        return f"{rebuilt} is left over from before: the readers use the published split; delete it"
    return (f"{rebuilt} is in use meanwhile: a split rebuilt at random, NOT the published split "
            "(results are not comparable with the papers'); fetch the published file")


def plan_lines(names, root):
    lines = []
    for name in names:
        lines.append(f"{name}:")
        for step in PLANS[name]:
            status = "done " if is_done(step, root, PLANS[name]) else "to do"
            lines.append(f"  [{status}] {describe(step)}")
            note = rebuilt_split_note(step, root)
            if note:
                lines.append(f"          note: {note}")
    return lines


def md5sum(path, chunk=1 << 20):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def http_fetch(url, dest, md5="", chunk=1 << 20):
    """Download ``url`` to ``dest`` through ``dest + '.part'``, continuing a partial file with a Range request."""
    part = dest + ".part"
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = have > 0 and getattr(response, "status", None) == 206
            if have and not resumed:
                print(f"  the server ignored the resume request: downloading {url} from the start")
            with open(part, "ab" if resumed else "wb") as f:
                for block in iter(lambda: response.read(chunk), b""):
                    f.write(block)
    except urllib.error.HTTPError as error:
        if error.code != 416:  # 416: nothing left to send, the partial file is complete
            raise RuntimeError(f"downloading {url} failed: HTTP {error.code} {error.reason}") from error
    if md5 and md5sum(part) != md5:
        os.remove(part)
        raise RuntimeError(
            f"{url}: the download does not match md5 {md5} (removed it); run again, or download it by hand to {dest}"
        )
    os.replace(part, dest)


def gdrive_fetch(file_id, dest):
    import gdown  # only needed for Google Drive files

    if not gdown.download(id=file_id, output=dest, quiet=False, resume=True):
        raise RuntimeError(
            f"Google Drive refused file {file_id} (quota or access); download "
            f"https://drive.google.com/file/d/{file_id}/view by hand to {dest}"
        )


def _inside(folder, member_name):
    target = os.path.realpath(os.path.join(folder, member_name))
    return target == os.path.realpath(folder) or target.startswith(os.path.realpath(folder) + os.sep)


def extract(archive, into):
    """Extract a tar (any compression) or zip archive, refusing members that would land outside ``into``."""
    os.makedirs(into, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            bad = [n for n in z.namelist() if not _inside(into, n)]
            if bad:
                raise RuntimeError(f"{archive} has members outside the target folder: {bad[:3]}")
            z.extractall(into)
        return
    with tarfile.open(archive) as t:
        bad = [m.name for m in t.getmembers() if not _inside(into, m.name)]
        if bad:
            raise RuntimeError(f"{archive} has members outside the target folder: {bad[:3]}")
        if hasattr(tarfile, "data_filter"):
            t.extractall(into, filter="data")
        else:
            t.extractall(into)


def run_step(step, root, keep_archives=False):
    if isinstance(step, Fetch):
        dest = os.path.join(root, step.dest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if step.url.startswith(GDRIVE):
            gdrive_fetch(step.url[len(GDRIVE):], dest)
        else:
            http_fetch(step.url, dest, step.md5)
    elif isinstance(step, Extract):
        archive = os.path.join(root, step.archive)
        extract(archive, os.path.join(root, step.into))
        if not os.path.exists(os.path.join(root, step.creates)):
            raise RuntimeError(f"extracting {archive} did not create {step.creates}; the archive's layout changed?")
        if not keep_archives:
            os.remove(archive)
    elif isinstance(step, Move):
        dst = os.path.join(root, step.dst)
        if os.path.exists(dst):
            raise RuntimeError(f"cannot move {step.src} to {dst}: it already exists")
        shutil.move(os.path.join(root, step.src), dst)
    else:
        print(f"  MANUAL STEP: {step.text}")


def download(names, root, keep_archives=False):
    """Run the plans of ``names``; returns the manual steps left to the user."""
    manual = []
    for name in names:
        print(f"{name}:")
        for step in PLANS[name]:
            if isinstance(step, Manual):
                manual.append(f"{name}: {step.text}")
            if is_done(step, root, PLANS[name]):
                print(f"  done already: {describe(step)}")
            else:
                print(f"  {describe(step)}")
                run_step(step, root, keep_archives)
            note = rebuilt_split_note(step, root)
            if note:
                print(f"  note: {note}")
    return manual


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help=f"datasets to fetch, or 'all': {', '.join(PLANS)}")
    parser.add_argument("--root", required=True, help="the DATASET.ROOT folder ($DATA)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and what is done already")
    parser.add_argument("--keep-archives", action="store_true", help="keep archives after extracting them")
    args = parser.parse_args(argv)
    names = list(PLANS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in PLANS]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; choose from {list(PLANS)} or 'all'")
    args.names = names
    return args


def main(argv=None):
    args = parse_args(argv)
    root = os.path.abspath(os.path.expanduser(args.root))
    if args.dry_run:
        print("\n".join(plan_lines(args.names, root)))
        return 0
    manual = download(args.names, root, args.keep_archives)
    if manual:
        print("\nLeft to do by hand:\n" + "\n".join(f"  - {m}" for m in manual))
    return 0


if __name__ == "__main__":
    sys.exit(main())
