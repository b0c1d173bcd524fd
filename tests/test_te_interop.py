"""Interop with python-threatexchange, checked with its own code: files its CLI writes are
imported, and our exports are read by its ``local_file`` exchange (both in-process and through
its CLI's fetch/dataset)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from blindmatch.node.cli.main import main

te = pytest.importorskip("threatexchange")

from threatexchange.cli.main import _DEFAULT_SIGNAL_TYPES  # noqa: E402
from threatexchange.exchanges.impl.file_api import (  # noqa: E402
    FileCollaborationConfig,
    LocalFileSignalExchangeAPI,
)
from threatexchange.extensions.vpdq.vpdq import VPDQSignal  # noqa: E402
from threatexchange.signal_type.md5 import VideoMD5Signal  # noqa: E402
from threatexchange.signal_type.pdq.signal import PdqSignal  # noqa: E402
from threatexchange.signal_type.sha256 import VideoSHA256Signal  # noqa: E402

DATA = Path(__file__).parent / "data" / "survivor"
PDQS = [
    "facd8bcb2a49bcebdec1985298d5fe84bcd006c187c598c720c3c087b3fdb318",
    "99d9633a9c7699996067e313b1985cee3b3c3192cc03612732e69f183ce760e7",
]
SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
TE_CLI = Path(sys.executable).with_name("threatexchange")


def te_cli(home: Path, *argv: str) -> str:
    """Run python-threatexchange's own CLI with its state in ``home``."""
    command = [str(TE_CLI)] if TE_CLI.exists() else [sys.executable, "-m", "threatexchange"]
    done = subprocess.run(
        [*command, *argv],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def te_dataset_from(home: Path, signals: Path) -> None:
    """Point a TE ``local_file`` collaboration at ``signals`` and fetch it."""
    te_cli(home, "config", "collab", "edit", "local_file", "--create",
           "--filename", str(signals), "mine")  # fmt: skip
    te_cli(home, "fetch")


def bank(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    code = main(["bank", *argv, "--db", url])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    assert bank(capsys, url, "create", "te", "--provenance", "peer-sourced")[0] == 0
    return url


def test_te_dataset_csv_and_lines_import(tmp_path: Path, url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    signals = tmp_path / "signals.txt"
    signals.write_text(
        f"pdq {PDQS[0]}\npdq {PDQS[1]}\nvideo_md5 {MD5}\nvideo_sha256 {SHA}\n", encoding="utf-8"
    )
    home = tmp_path / "te"
    home.mkdir()
    te_dataset_from(home, signals)
    csv_file = tmp_path / "dataset.csv"
    csv_file.write_text(te_cli(home, "dataset", "-P", "--csv"))
    assert csv_file.read_text().startswith("signal_type,signal_str,collab,category,tags")

    # A mixed dump is refused whole, naming the line and the way out ...
    code, _, err = bank(capsys, url, "import", "te", str(csv_file))
    assert code == 1 and "video_md5" in err and "--skip-unsupported" in err
    # ... and with --skip-unsupported what we hold is imported and the rest counted.
    code, out, err = bank(capsys, url, "import", "te", str(csv_file), "--skip-unsupported")
    assert code == 0, err
    assert out.strip() == "imported 3, already present 0 (format te-csv)"
    assert "skipped 1 unsupported signal(s): video_md5 1" in err

    lines_file = tmp_path / "dataset.txt"
    lines_file.write_text(te_cli(home, "dataset", "-P", "-S"))
    code, out, err = bank(capsys, url, "import", "te", str(lines_file), "--skip-unsupported")
    assert code == 0 and "imported 0, already present 3 (format te-lines)" in out
    assert "video_md5 1" in err


def test_te_rotations_output_imports(tmp_path: Path, url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "te"
    home.mkdir()
    rotations = te_cli(
        home, "hash", "--photo-preprocess", "rotations", "photo", str(DATA / "landscape.png")
    )
    assert len(rotations.split("\n")[0].split()) == 3  # '<ROTATION> pdq <hex>'
    listing = tmp_path / "rotations.txt"
    listing.write_text(rotations)
    code, out, err = bank(capsys, url, "import", "te", str(listing))
    assert code == 0, err
    assert out.strip() == "imported 8, already present 0 (format te-lines)"


def test_te_lines_export_is_read_by_local_file_exchange(tmp_path: Path, url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    hashes = tmp_path / "mine.txt"
    hashes.write_text(f"pdq {PDQS[0]}\npdq {PDQS[1]}\nsha256 {SHA}\n")
    assert bank(capsys, url, "add", "te", "--file", str(hashes))[0] == 0
    video = json.dumps([f"{PDQS[0]},100,0.0", f"{PDQS[1]},90,1.0"])  # a video: TE's vpdq string
    assert bank(capsys, url, "add", "te", video, "--signal-type", "vpdq")[0] == 0
    exported = tmp_path / "export.te"
    code, _, err = bank(capsys, url, "export", "te", str(exported), "--format", "te-lines")
    assert code == 0 and "exported 4 items" in err
    # python-threatexchange's vpdq extension reads the video back as a valid signal.
    vpdq_line = exported.read_text().splitlines()[-1]
    assert vpdq_line.startswith("vpdq ")
    assert VPDQSignal.validate_signal_str(vpdq_line[5:]) == vpdq_line[5:]
    exported.write_text("\n".join(exported.read_text().splitlines()[:-1]) + "\n")

    # TE's own exchange and conversion, with every signal type its CLI knows: every line is
    # read as a valid signal.
    api = LocalFileSignalExchangeAPI.for_collab(
        FileCollaborationConfig(
            name="blindmatch", api="local_file", enabled=True, filename=str(exported)
        )
    )
    types = list(_DEFAULT_SIGNAL_TYPES)
    assert {PdqSignal, VideoMD5Signal, VideoSHA256Signal} <= set(types)
    (delta,) = list(api.fetch_iter(types, None))
    assert len(delta.updates) == 3
    by_type = LocalFileSignalExchangeAPI.naive_convert_to_signal_type(
        types, api.collab, delta.updates
    )
    assert set(by_type[PdqSignal]) == set(PDQS)
    assert set(by_type[VideoSHA256Signal]) == {SHA}

    # And through TE's CLI: fetch the file as a collaboration, count what its dataset holds.
    home = tmp_path / "te"
    home.mkdir()
    te_dataset_from(home, exported)
    summary = te_cli(home, "dataset")
    assert "pdq: 2" in summary and "video_sha256: 1" in summary


def test_hma_json_export_validates_as_hma_would(tmp_path: Path, url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    hashes = tmp_path / "mine.txt"
    hashes.write_text(f"pdq {PDQS[0]}\nsha256 {SHA}\n")
    assert bank(capsys, url, "add", "te", "--file", str(hashes))[0] == 0
    code, out, _ = bank(capsys, url, "export", "te", "--format", "hma-json")
    assert code == 0
    bodies = [json.loads(line) for line in out.splitlines()]
    assert bodies == [{"pdq": PDQS[0]}, {"video_sha256": SHA}]
    # HMA's POST /c/bank/NAME/signal validates each value with the named TE signal type.
    by_name = {s.get_name(): s for s in (PdqSignal, VideoSHA256Signal)}
    for body in bodies:
        ((name, value),) = body.items()
        assert by_name[name].validate_signal_str(value) == value
    # and the export reads back as our own hma-json import
    back = tmp_path / "back.json"
    back.write_text(out)
    assert bank(capsys, url, "create", "copy", "--provenance", "peer-sourced")[0] == 0
    code, out, _ = bank(capsys, url, "import", "copy", str(back))
    assert code == 0 and out.strip() == "imported 2, already present 0 (format hma-json)"
