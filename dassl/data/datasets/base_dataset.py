"""``Datum`` (one labelled image) and ``DatasetBase`` (train/val/test lists of Datum).

This module path and the ``_impath/_label/_domain/_classname`` attribute names are part
of the API: few-shot caches pickled by stock Dassl store exactly these. ``_dataset`` and
``_dataset_label`` (items of a joined dataset, see ``joined.py``) exist only when given, so
other items pickle exactly as in stock Dassl.
"""

import random
from collections import defaultdict

from tqdm import tqdm

from dassl.utils import check_isfile, is_main_process, plural


def log_warning(message):
    """Print ``WARNING: message`` to stdout, hence into the run's log.txt (``setup_logger`` tees
    stdout only; ``warnings.warn`` would reach the console but not the log)."""
    print("WARNING: " + message, flush=True)


class Datum:
    """One image: path, class label, domain label and class name.

    Items of a joined dataset also carry ``dataset`` (the index of the dataset they come from)
    and ``dataset_label`` (their label within it; ``label`` is in the joined label space).
    Without them (a single dataset, or a pickle made by stock Dassl) ``dataset`` is 0 and
    ``dataset_label`` is ``label``.

    Plain instance attributes (no slots) so pickles made by stock Dassl load here.
    """

    def __init__(self, impath="", label=0, domain=0, classname="", dataset=None, dataset_label=None):
        assert isinstance(impath, str), "Datum impath must be a str, got {}".format(type(impath).__name__)
        assert check_isfile(impath), 'Datum image file not found: "{}"'.format(impath)
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname
        if dataset is not None:
            self._dataset = dataset
        if dataset_label is not None:
            self._dataset_label = dataset_label

    @property
    def impath(self):
        return self._impath

    @property
    def label(self):
        return self._label

    @property
    def domain(self):
        return self._domain

    @property
    def classname(self):
        return self._classname

    @property
    def dataset(self):
        return self.__dict__.get("_dataset", 0)

    @property
    def dataset_label(self):
        return self.__dict__.get("_dataset_label", self._label)

    def __repr__(self):
        joined = ""
        if "_dataset" in self.__dict__ or "_dataset_label" in self.__dict__:
            joined = ", dataset={}, dataset_label={}".format(self.dataset, self.dataset_label)
        return "Datum(impath={!r}, label={}, domain={}, classname={!r}{})".format(
            self._impath, self._label, self._domain, self._classname, joined
        )


class DatasetBase:
    """Holds ``train_x`` (labelled), ``train_u`` (unlabelled), ``val`` and ``test`` lists.

    Subclasses set their own attributes (``dataset_dir``, ``split_path``, ...) and then call
    ``super().__init__(train_x=..., val=..., test=...)``. Class names and the number of
    classes are read off ``train_x``.
    """

    dataset_dir = ""  # folder name under DATASET.ROOT
    domains = []  # domain names (domain generalisation datasets only)

    def __init__(self, train_x=None, train_u=None, val=None, test=None):
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    @property
    def train_x(self):
        return self._train_x

    @property
    def train_u(self):
        return self._train_u

    @property
    def val(self):
        return self._val

    @property
    def test(self):
        return self._test

    @property
    def lab2cname(self):
        return self._lab2cname

    @property
    def classnames(self):
        return self._classnames

    @property
    def num_classes(self):
        return self._num_classes

    @staticmethod
    def get_num_classes(data_source):
        """Largest label + 1 (labels are expected to be 0..K-1)."""
        return max(item.label for item in data_source) + 1

    @staticmethod
    def get_lab2cname(data_source):
        """``({label: classname}, [classname ordered by label])``."""
        container = {(item.label, item.classname) for item in data_source}
        mapping = {label: classname for label, classname in container}
        labels = sorted(mapping.keys())
        classnames = [mapping[label] for label in labels]
        return mapping, classnames

    def check_input_domains(self, source_domains, target_domains):
        assert len(source_domains) > 0, "source_domains (list) is empty"
        assert len(target_domains) > 0, "target_domains (list) is empty"
        self.is_input_domain_valid(source_domains)
        self.is_input_domain_valid(target_domains)

    def is_input_domain_valid(self, input_domains):
        for domain in input_domains:
            if domain not in self.domains:
                raise ValueError("Input domain must belong to {}, but got [{}]".format(self.domains, domain))

    def download_data(self, url, dst, from_gdrive=True):
        """Download (gdown for Google Drive links) and extract an archive next to ``dst``."""
        import os.path as osp
        import tarfile
        import zipfile

        from dassl.utils import download_url, mkdir_if_missing

        mkdir_if_missing(osp.dirname(dst))
        if from_gdrive:
            import gdown  # only needed for Google Drive links

            gdown.download(url, dst, quiet=False)
        else:
            download_url(url, dst)
        print("Extracting file ...")
        if dst.endswith(".zip"):
            with zipfile.ZipFile(dst, "r") as zf:
                zf.extractall(osp.dirname(dst))
        elif dst.endswith(".tar") or dst.endswith(".tar.gz") or dst.endswith(".tgz"):
            with tarfile.open(dst, "r:*") as tf:
                tf.extractall(osp.dirname(dst), filter="data")
        else:
            raise NotImplementedError("Cannot extract {}: expected .zip, .tar, .tar.gz or .tgz".format(dst))
        print("File extracted to {}".format(osp.dirname(dst)))

    def generate_fewshot_dataset(self, *data_sources, num_shots=-1, repeat=False, what="dataset"):
        """Keep ``num_shots`` random items per label of each source (global ``random``).

        Labels are visited in order of first appearance and ``random.sample`` (or, with
        ``repeat`` and too few items, ``random.choices``) is called once per label, exactly
        as Dassl does, so a given seed yields the same split as stock Dassl. A class with fewer
        items keeps them all (without ``repeat``), with a warning naming it and its count.
        ``what`` names the subset in the log ("train set", "val set"; Dassl prints "dataset").
        Returns a list for one source, a list of lists for several.
        """
        if num_shots < 1:
            if len(data_sources) == 1:
                return data_sources[0]
            return data_sources

        print("Creating a {}-shot {}".format(num_shots, what))
        output = []
        for data_source in data_sources:
            tracker = self.split_dataset_by_label(data_source)
            dataset, short = [], []
            # one step per class; the bar shows only when sampling takes more than a second
            bar = tqdm(tracker.items(), total=len(tracker), desc="{}-shot sampling".format(num_shots), unit="class",
                       delay=1, disable=not is_main_process())
            for label, items in bar:
                if len(items) >= num_shots:
                    sampled_items = random.sample(items, num_shots)
                elif repeat:
                    sampled_items = random.choices(items, k=num_shots)
                else:
                    sampled_items = items
                    short.append("{!r} ({})".format(items[0].classname, plural(len(items), "image")))
                dataset.extend(sampled_items)
            if short:
                log_warning("{} asked for the {}, but {} fewer: {}{}; {} all of them.".format(
                    plural(num_shots, "shot"), what, plural(len(short), "class has", "classes have"),
                    ", ".join(short[:20]), " ..." if len(short) > 20 else "",
                    "it keeps" if len(short) == 1 else "they keep"))
            output.append(dataset)

        if len(output) == 1:
            return output[0]
        return output

    def split_dataset_by_label(self, data_source):
        """``{label: [items]}`` with labels in order of first appearance."""
        output = defaultdict(list)
        for item in data_source:
            output[item.label].append(item)
        return output

    def split_dataset_by_domain(self, data_source):
        """``{domain: [items]}`` with domains in order of first appearance."""
        output = defaultdict(list)
        for item in data_source:
            output[item.domain].append(item)
        return output
