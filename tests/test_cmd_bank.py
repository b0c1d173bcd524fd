"""``blindmatch bank ...`` end to end on a SQLite file (and PostgreSQL for one round trip)."""

from __future__ import annotations

import json

import pytest

from blindmatch.node.cli.main import main

H1 = "f" * 64


def run(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    code = main(["bank", *argv, "--db", url])
    out, err = capsys.readouterr()
    return code, out, err


def test_bank_cli_round_trip(tmp_path, capsys, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    assert run(capsys, url, "create", "hub", "--provenance", "survivor-submitted")[0] == 0
    code, out, _ = run(capsys, url, "add", "hub", H1, "--quality", "90", "--category", "ncii")
    assert (code, out.strip()) == (0, "added 1, already present 0")

    code, _, err = run(capsys, url, "add", "hub", "f" * 63)
    assert code == 1 and "exactly 64 hex characters, got 63" in err

    hashes = tmp_path / "hashes.txt"
    hashes.write_text(f"pdq {'1' * 64}\n{'2' * 64}\nnot-a-hash\n")
    code, _, err = run(capsys, url, "add", "hub", "--file", str(hashes))
    assert code == 1 and "line 3" in err
    hashes.write_text(f"pdq {'1' * 64}\n{'2' * 64}\n")
    assert run(capsys, url, "add", "hub", "--file", str(hashes))[0] == 0

    code, out, _ = run(capsys, url, "list")
    assert code == 0 and "hub" in out and "survivor-submitted" in out
    code, out, _ = run(capsys, url, "list", "hub")
    assert code == 0 and H1 not in out  # listings never show hashes
    refs = [line.split()[0] for line in out.splitlines()[1:]]
    assert len(refs) == 3

    export = tmp_path / "hub.jsonl"
    assert run(capsys, url, "export", "hub", str(export))[0] == 0
    records = [json.loads(line) for line in export.read_text().splitlines()]
    assert [r["hash"] for r in records] == [H1, "1" * 64, "2" * 64]

    assert run(capsys, url, "create", "copy", "--provenance", "moderator-confirmed")[0] == 0
    code, out, _ = run(capsys, url, "import", "copy", str(export))
    assert (code, out.strip()) == (0, "imported 3, already present 0 (format jsonl)")

    code, _, err = run(capsys, url, "withdraw", refs[0])
    assert code == 1 and "--operator" in err
    assert run(capsys, url, "withdraw", refs[0], "--operator", "--reason", "appeal")[0] == 0
    code, out, _ = run(capsys, url, "list", "hub", "--all")
    assert "withdrawn" in out

    assert run(capsys, url, "disable", "copy")[0] == 0
    code, out, _ = run(capsys, url, "remove", "--ref", refs[1])
    assert (code, out.strip()) == (0, "removed 1")
    assert run(capsys, url, "delete", "copy")[0] == 1  # needs --yes
    assert run(capsys, url, "delete", "copy", "--yes")[0] == 0

    monkeypatch.setenv("BLINDMATCH_DB", url)
    assert main(["bank", "list"]) == 0
    assert "hub" in capsys.readouterr().out


def test_bank_cli_reports_unknown_bank(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    code, _, err = run(capsys, url, "add", "nope", H1)
    assert code == 1 and "no bank named 'nope'" in err
    code, _, err = run(capsys, url, "export", "nope", str(tmp_path / "x.jsonl"))
    assert code == 1 and not (tmp_path / "x.jsonl").exists()


def test_bank_cli_adds_an_image_by_its_hashes(tmp_path, capsys) -> None:
    np = pytest.importorskip("numpy")
    image_module = pytest.importorskip("PIL.Image")
    pytest.importorskip("pdqhash")
    rng = np.random.default_rng(5)
    pixels = (rng.random((64, 64, 3)) * 255).astype("uint8")
    picture = tmp_path / "picture.png"
    image_module.fromarray(pixels).resize((256, 256)).save(picture)
    url = f"sqlite:///{tmp_path / 'node.db'}"
    assert run(capsys, url, "create", "mods", "--provenance", "moderator-confirmed")[0] == 0
    code, out, err = run(capsys, url, "add", "mods", "--media", str(picture))
    assert code == 0, err
    assert out.strip() == "added 2, already present 0"  # its PDQ and its SHA-256
    code, out, _ = run(capsys, url, "add", "mods", "--media", str(picture))
    assert out.strip() == "added 0, already present 2"
    code, out, _ = run(capsys, url, "list", "mods")
    assert {line.split()[1] for line in out.splitlines()[1:]} == {"pdq", "sha256"}


def test_bank_cli_adds_a_protected_source_with_its_tiles(tmp_path, capsys) -> None:
    import asyncio

    skimage_data = pytest.importorskip("skimage.data")
    image_module = pytest.importorskip("PIL.Image")
    from blindmatch.node.media import tiles as tile_hashing
    from blindmatch.node.storage import open_database

    picture = tmp_path / "photo.png"
    image_module.fromarray(skimage_data.astronaut()).save(picture)
    url = f"sqlite:///{tmp_path / 'node.db'}"
    assert run(capsys, url, "create", "sources", "--provenance", "protected-source")[0] == 0
    code, out, err = run(capsys, url, "add", "sources", "--media", str(picture))
    assert code == 0, err
    assert out.strip() == "added 1, already present 0"
    _, expected = tile_hashing.protected_source(picture.read_bytes())

    async def stored() -> list[tuple[str, int, bytes]]:
        db = await open_database(url)
        try:
            rows = await db.fetch_all("SELECT cell, frame, hash FROM source_tiles ORDER BY id")
            return [(r["cell"], int(r["frame"]), bytes(r["hash"])) for r in rows]
        finally:
            await db.close()

    assert asyncio.run(stored()) == [(t.cell, t.frame, t.hash) for t in expected]
    assert len(expected) > 40  # a textured photo keeps most of its 123 index tiles


def test_bank_add_video_and_export_its_vpdq_signal(tmp_path, capsys) -> None:
    """``bank add --video`` banks a video as one item; exports write its frame list as
    ThreatExchange's vpdq signal string, which imports back as the same video."""
    import subprocess

    from blindmatch.node.media.ffmpeg import ffmpeg_available
    from blindmatch.node.signals.vpdq.hasher import vpdq_available

    if not (ffmpeg_available() and vpdq_available()):
        pytest.skip("needs ffmpeg and vpdq")
    from PIL import Image

    Image.fromarray(pytest.importorskip("skimage.data").coffee()).save(tmp_path / "c.png")
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-loop",
            "1",
            "-i",
            str(tmp_path / "c.png"),
            "-vf",
            "crop=320:240:'30*t':'10*t',fps=10,format=yuv420p",
            "-t",
            "3",
            "-c:v",
            "libx264",
            str(clip),
        ],
        check=True,
    )
    url = f"sqlite:///{tmp_path / 'node.db'}"
    assert run(capsys, url, "create", "v", "--provenance", "survivor-submitted")[0] == 0
    code, out, err = run(capsys, url, "add", "v", "--video", str(clip))
    assert (code, out.strip()) == (0, "added 1, already present 0"), err
    export = tmp_path / "v.jsonl"
    assert run(capsys, url, "export", "v", str(export))[0] == 0
    [record] = [json.loads(line) for line in export.read_text().splitlines()]
    assert record["signal_type"] == "vpdq" and len(json.loads(record["hash"])) == 3
    assert run(capsys, url, "create", "w", "--provenance", "survivor-submitted")[0] == 0
    code, out, _ = run(capsys, url, "import", "w", str(export))
    assert (code, out.strip()) == (0, "imported 1, already present 0 (format jsonl)")


def test_bank_cli_banks_crops_unless_told_not_to(tmp_path, capsys) -> None:
    import asyncio

    skimage_data = pytest.importorskip("skimage.data")
    image_module = pytest.importorskip("PIL.Image")
    from blindmatch.node.banks.service import BankService
    from blindmatch.node.clock import SystemClock
    from blindmatch.node.storage import open_database

    picture = tmp_path / "photo.png"
    image_module.fromarray(skimage_data.astronaut()).save(picture)
    url = f"sqlite:///{tmp_path / 'node.db'}"
    for bank in ("with", "without"):
        assert run(capsys, url, "create", bank, "--provenance", "moderator-confirmed")[0] == 0
    assert run(capsys, url, "add", "with", "--media", str(picture))[0] == 0
    code, _, err = run(capsys, url, "add", "without", "--media", str(picture), "--no-crops")
    assert code == 0, err

    async def crops_per_bank() -> dict[str, int]:
        db = await open_database(url)
        try:
            banks = BankService(db, SystemClock())
            out = {}
            for bank in ("with", "without"):
                items = await banks.list_items(bank, signal_type="pdq")
                out[bank] = len(await banks.item_crops(items[0].item_ref))
            return out
        finally:
            await db.close()

    counts = asyncio.run(crops_per_bank())
    assert counts["without"] == 0 and counts["with"] > 30, counts
