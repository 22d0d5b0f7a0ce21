"""scripts/download_data.py, tried on local files and a loopback HTTP server (no internet here)."""

import hashlib
import http.server
import importlib.util
import io
import json
import os
import tarfile
import threading
import zipfile

import pytest

from dataset_trees import JPEG_BYTES, REPO, load

spec = importlib.util.spec_from_file_location("download_data", os.path.join(REPO, "scripts", "download_data.py"))
dd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dd)

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


class RangeServer:
    """Serves PAYLOAD at /file; honours Range unless ``honour_range`` is False; records request headers."""

    def __init__(self, honour_range=True):
        self.ranges = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requested = self.headers.get("Range")
                server.ranges.append(requested)
                start = int(requested[len("bytes="):].rstrip("-")) if requested and honour_range else 0
                if start >= len(PAYLOAD):
                    self.send_response(416)
                    self.end_headers()
                    return
                body = PAYLOAD[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def md5(data):
    return hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("already", [0, 40_000])
def test_http_fetch_resumes_with_range(tmp_path, already):
    dest = str(tmp_path / "file.bin")
    if already:
        (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:already])
    with RangeServer() as server:
        dd.http_fetch(server.url, dest, md5(PAYLOAD))
    assert open(dest, "rb").read() == PAYLOAD
    assert server.ranges == ([f"bytes={already}-"] if already else [None])
    assert not os.path.exists(dest + ".part")


def test_http_fetch_restarts_when_server_ignores_range(tmp_path):
    dest = str(tmp_path / "file.bin")
    (tmp_path / "file.bin.part").write_bytes(b"x" * 1000)
    with RangeServer(honour_range=False) as server:
        dd.http_fetch(server.url, dest)
    assert open(dest, "rb").read() == PAYLOAD


def test_http_fetch_complete_part_file(tmp_path):
    dest = str(tmp_path / "file.bin")
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    with RangeServer() as server:
        dd.http_fetch(server.url, dest, md5(PAYLOAD))  # server answers 416
    assert open(dest, "rb").read() == PAYLOAD


def test_checksum_mismatch_removes_the_download(tmp_path):
    dest = str(tmp_path / "file.bin")
    with RangeServer() as server, pytest.raises(RuntimeError, match="does not match md5"):
        dd.http_fetch(server.url, dest, md5(b"something else"))
    assert not os.path.exists(dest) and not os.path.exists(dest + ".part")


def test_file_url(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(PAYLOAD)
    dd.http_fetch(source.as_uri(), str(tmp_path / "copy.bin"), md5(PAYLOAD))
    assert (tmp_path / "copy.bin").read_bytes() == PAYLOAD


def make_tar(path, files):
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def test_extract_tar_and_zip_and_refuse_escapes(tmp_path):
    make_tar(tmp_path / "a.tar.gz", {"dtd/images/banded/1.jpg": b"1"})
    dd.extract(str(tmp_path / "a.tar.gz"), str(tmp_path / "out"))
    assert (tmp_path / "out" / "dtd" / "images" / "banded" / "1.jpg").read_bytes() == b"1"

    with zipfile.ZipFile(tmp_path / "b.zip", "w") as z:
        z.writestr("2750/River/1.jpg", b"2")
    dd.extract(str(tmp_path / "b.zip"), str(tmp_path / "out"))
    assert (tmp_path / "out" / "2750" / "River" / "1.jpg").read_bytes() == b"2"

    make_tar(tmp_path / "evil.tar.gz", {"../escaped.txt": b"!"})
    with pytest.raises(RuntimeError, match="outside the target folder"):
        dd.extract(str(tmp_path / "evil.tar.gz"), str(tmp_path / "out"))
    assert not (tmp_path / "escaped.txt").exists()


def fake_dtd_plan(tmp_path):
    """DTD's real plan with the archive served from a local file."""
    files = {f"dtd/images/{c}/{c}_{i}.jpg": JPEG_BYTES for c in ("banded", "bubbly") for i in range(5)}
    make_tar(tmp_path / "dtd-r1.0.1.tar.gz", files)
    data = (tmp_path / "dtd-r1.0.1.tar.gz").read_bytes()
    real = dd.PLANS["DescribableTextures"]
    fetch = dd.Fetch((tmp_path / "dtd-r1.0.1.tar.gz").as_uri(), real[0].dest, md5(data))
    return [fetch] + real[1:]


def test_end_to_end_layout_is_what_the_reader_expects(tmp_path, root, monkeypatch, capsys):
    monkeypatch.setitem(dd.PLANS, "DescribableTextures", fake_dtd_plan(tmp_path))
    split = {
        part: [[f"{c}/{c}_{i}.jpg", k, c] for k, c in enumerate(("banded", "bubbly")) for i in idx]
        for part, idx in (("train", (0, 1)), ("val", (2,)), ("test", (3, 4)))
    }
    gdrive_calls = []

    def fake_gdrive(file_id, dest):
        gdrive_calls.append(file_id)
        with open(dest, "w") as f:
            json.dump(split, f)

    monkeypatch.setattr(dd, "gdrive_fetch", fake_gdrive)

    assert dd.main(["--root", str(root), "--dry-run", "DescribableTextures"]) == 0
    assert capsys.readouterr().out.count("[to do]") == 3
    assert not root.exists()  # a dry run touches nothing

    dd.main(["--root", str(root), "DescribableTextures"])
    assert gdrive_calls == ["1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x"]
    assert not (root / "dtd-r1.0.1.tar.gz").exists()  # archive removed after extraction
    dataset = load(root, "DescribableTextures")
    assert dataset.classnames == ["banded", "bubbly"] and len(dataset.test) == 4

    # a second run finds everything done, without fetching the deleted archive again
    monkeypatch.setattr(dd, "http_fetch", lambda *a, **k: pytest.fail("fetched again"))
    capsys.readouterr()
    dd.main(["--root", str(root), "--dry-run", "DescribableTextures"])
    assert capsys.readouterr().out.count("[done ]") == 3
    dd.main(["--root", str(root), "DescribableTextures"])


def test_unknown_dataset_is_refused(capsys):
    with pytest.raises(SystemExit):
        dd.main(["--root", "/tmp", "Cifar10"])
    assert "unknown dataset" in capsys.readouterr().err


def test_plans_produce_the_readers_layouts():
    """Every CoOp dataset has a plan whose steps end in the folders its reader opens."""
    from dataset_trees import register_datasets
    from dassl.data.datasets import DATASET_REGISTRY

    register_datasets()
    for name, plan in dd.PLANS.items():
        reader = DATASET_REGISTRY.get(name)
        image_dir = os.path.normpath(os.path.join(reader.dataset_dir, reader.image_subdir))
        made = [s.creates for s in plan if isinstance(s, dd.Extract)] + [s.dst for s in plan if isinstance(s, dd.Move)]
        manual = any(isinstance(s, dd.Manual) for s in plan)
        assert manual or any(image_dir == m or image_dir.startswith(m + "/") for m in made), name
        split_name = getattr(reader, "split_name", "")
        if split_name:
            assert any(isinstance(s, dd.Fetch) and s.dest == f"{reader.dataset_dir}/{split_name}" for s in plan), name
        fetched = {s.dest for s in plan if isinstance(s, dd.Fetch)} | set(made)
        for step in plan:
            if isinstance(step, dd.Extract):
                assert step.archive in fetched, (name, step.archive)
    assert len(dd.PLANS) == 15
