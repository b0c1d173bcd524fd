"""Hash-list parsers (pure): every accepted line is exactly right, every bad line is named."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.node.banks.formats import (
    MAX_LINE_BYTES,
    ImportFormatError,
    export_record,
    parse_hash_list,
    parse_jsonl,
    parse_te_csv,
    parse_te_lines,
    te_export_line,
)
from blindmatch.node.banks.validation import BankValidationError

H = "0123456789abcdef" * 4


def problems(exc: pytest.ExceptionInfo[ImportFormatError]) -> dict[int, str]:
    return {p.line: p.message for p in exc.value.problems}


def test_jsonl_accepts_every_documented_field() -> None:
    line = json.dumps(
        {
            "signal_type": "pdq",
            "hash": H.upper(),
            "quality": 0,
            "categories": ["ncii", "a:b"],
            "expires_at": None,
            "added_at": 5,
            "provenance": {"reviewer": "r1", "count": 2, "ok": True, "none": None},
            "item_ref": "ab" * 16,
            "withdrawal_secret_sha256": "cd" * 32,
        }
    )
    (item,) = parse_jsonl(io.BytesIO(b"\xef\xbb\xbf" + line.encode() + b"\r\n\n")).items
    assert item.line == 1 and item.hash == bytes.fromhex(H) and item.quality == 0
    assert item.item_ref == bytes.fromhex("ab" * 16)
    assert item.withdrawal_secret_hash == bytes.fromhex("cd" * 32)


def test_export_record_round_trips() -> None:
    line = export_record(
        signal_type="pdq",
        hash_bytes=bytes.fromhex(H),
        quality=77,
        categories=["ncii"],
        expires_at=99,
        added_at=5,
        provenance={"k": "v"},
        item_ref=b"\x01" * 16,
        withdrawal_secret_hash=b"\x02" * 32,
        include_private=True,
    )
    (item,) = parse_jsonl([line]).items
    assert (item.quality, item.categories, item.expires_at, item.added_at) == (77, ("ncii",), 99, 5)
    assert item.provenance == {"k": "v"} and item.item_ref == b"\x01" * 16


def test_te_lines() -> None:
    parsed = parse_te_lines(io.BytesIO(f"pdq {H}\n  sha256\t{H}  \n".encode()))
    assert [i.signal_type for i in parsed.items] == ["pdq", "sha256"]
    source = io.BytesIO(f"{H}\nvpdq {H}\nvideo_md5 {'0' * 32}\npdq {H} extra\nfoo {H}\n".encode())
    with pytest.raises(ImportFormatError) as caught:
        parse_te_lines(source)
    found = problems(caught)
    assert "needs the signal type" in found[1]
    assert "vpdq signal" in found[2]  # a video's signal string is a JSON list of frames
    assert "MD5 signals are not supported" in found[3]
    assert "the first must be a rotation" in found[4]
    assert "unsupported signal type 'foo'" in found[5]
    assert len(parse_te_lines(io.BytesIO(H.encode()), "pdq").items) == 1
    with pytest.raises(BankValidationError):
        parse_te_lines(io.BytesIO(H.encode()), "md5")


def test_te_csv_header_and_rows() -> None:
    with pytest.raises(ImportFormatError, match="unknown column"):
        parse_te_csv(io.StringIO(f"pdq,{H}\n"))
    with pytest.raises(ImportFormatError, match="empty file"):
        parse_te_csv(io.StringIO(""))
    rows = (
        "collab,signal_type,signal_str,category,tags\n"
        f"c,pdq,{H},MAYBE,\n"
        f"c,pdq,{H}\n"
        f'"c, with comma",pdq,{H},INVESTIGATION_SEED,\n'
        f"c,pdq,{H},POSITIVE_CLASS,bad!tag\n"
    )
    with pytest.raises(ImportFormatError) as caught:
        parse_te_csv(io.StringIO(rows))
    found = problems(caught)
    assert set(found) == {2, 3, 5}
    assert "unknown category 'MAYBE'" in found[2] and "expected 5 columns" in found[3]


def test_hma_json() -> None:
    parsed = parse_hash_list("hma-json", [json.dumps({"pdq": H, "tlsh": "T1AB"})])
    assert len(parsed.items) == 1 and parsed.unsupported == {"tlsh": 1}
    with pytest.raises(ImportFormatError) as caught:
        parse_hash_list("hma-json", ["{}", json.dumps({"video_md5": "0" * 32}), "[]"])
    assert set(problems(caught)) == {1, 2, 3}
    with pytest.raises(BankValidationError, match="unknown format"):
        parse_hash_list("csv", [])


def test_oversized_line_costs_bounded_memory() -> None:
    class Reader(io.RawIOBase):
        """A 'file' whose second line is 10 MiB; counts the largest read asked for."""

        def __init__(self) -> None:
            self.data = io.BytesIO(
                json.dumps({"signal_type": "pdq", "hash": H}).encode()
                + b"\n"
                + b"x" * (10 << 20)
                + b"\n"
                + json.dumps({"signal_type": "pdq", "hash": H}).encode()
            )
            self.largest = 0

        def readline(self, size: int | None = -1) -> bytes:
            self.largest = max(self.largest, size or 0)
            return self.data.readline(size)

    reader = Reader()
    with pytest.raises(ImportFormatError) as caught:
        parse_jsonl(reader)
    assert problems(caught) == {2: f"line is longer than {MAX_LINE_BYTES} bytes"}
    assert reader.largest <= MAX_LINE_BYTES + 1


def test_many_bad_lines_are_summarised() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_jsonl([b"nope"] * 500)
    assert caught.value.total == 500 and len(caught.value.problems) == 50
    assert "and 450 more" in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200) | st.text(max_size=200), max_size=8))
def test_arbitrary_input_is_parsed_or_refused_cleanly(lines: list[bytes | str]) -> None:
    encoded = [x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass") for x in lines]
    for fmt in ("jsonl", "te-lines", "te-csv", "hma-json"):
        try:
            parsed = parse_hash_list(fmt, io.BytesIO(b"\n".join(encoded)), "pdq")
        except ImportFormatError as exc:
            assert exc.problems and all(p.message for p in exc.problems)
        else:
            for item in parsed.items:
                assert len(item.hash) == 32


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["signal_type", "hash", "quality", "categories", "expires_at", "x"]),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=70)
        | st.lists(st.text(max_size=5), max_size=3),
    )
)
def test_arbitrary_json_records_are_parsed_or_refused_cleanly(record: dict) -> None:
    try:
        parsed = parse_jsonl([json.dumps(record)])
    except ImportFormatError as exc:
        assert exc.problems[0].line == 1
    else:
        assert parsed.items[0].signal_type == record["signal_type"]


def test_errors_never_echo_hash_values() -> None:
    sources = [
        ("te-lines", f"{H} pdq\n"),
        ("jsonl", json.dumps({"signal_type": H, "hash": H}) + "\n"),
        ("jsonl", json.dumps({H: 1, "signal_type": "pdq", "hash": H}) + "\n"),
        ("jsonl", json.dumps({"signal_type": "pdq", "hash": H, "categories": [H]}) + "\n"),
        ("jsonl", json.dumps({"signal_type": "pdq", "hash": H[:-1] + "z"}) + "\n"),
        ("hma-json", json.dumps({H: H}) + "\n"),
    ]
    for fmt, text in sources:
        with pytest.raises(ImportFormatError) as caught:
            parse_hash_list(fmt, io.StringIO(text))
        assert H[:12] not in str(caught.value), (fmt, str(caught.value))


def test_vpdq_signal_strings_are_videos_in_every_format() -> None:
    """A TE vpdq signal string (a video's frame list) is one item with its frames, in jsonl,
    te-lines (spaces inside the JSON are fine), te-csv and hma-json; exports write it back."""
    signal = json.dumps([f"{H},100,0.0", f"{'ab' * 32},90,1.0", f"{'cd' * 32},20,2.0"])
    lines = {
        "jsonl": [json.dumps({"signal_type": "vpdq", "hash": signal})],
        "te-lines": [f"vpdq {signal}"],
        "te-csv": ["signal_type,signal_str", "vpdq," + '"' + signal.replace('"', '""') + '"'],
        "hma-json": [json.dumps({"vpdq": signal})],
    }
    items = []
    for fmt, source in lines.items():
        (item,) = parse_hash_list(fmt, source).items
        assert item.signal_type == "vpdq" and item.frames is not None and len(item.frames) == 3
        items.append(item)
    assert len({i.hash for i in items}) == 1  # the same video, whichever format
    out = te_export_line("te-lines", "vpdq", items[0].hash, signal_str=signal)
    assert out == f"vpdq {signal}"
    flat = json.dumps([f"{'cd' * 32},20,2.0"])  # no frame of quality 50: could never match
    with pytest.raises(ImportFormatError, match="no frame reaches quality 50"):
        parse_hash_list("jsonl", [json.dumps({"signal_type": "vpdq", "hash": flat})])
