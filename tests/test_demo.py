"""The README's demo runs end to end and reports what it should."""

from __future__ import annotations

from pathlib import Path

from blindmatch.node.devtools.demo_federation import run_demo


async def test_demo_federation(tmp_path: Path) -> None:
    lines: list[str] = []
    result = await run_demo(tmp_path, say=lines.append)
    # Every copy within PDQ's reach is found (mirror, resize+JPEG, letterbox, rotation);
    # crop 5% and the caption strip are beyond distance 31 and are reported as such.
    assert result["copies_matched"] >= 4
    assert result["unrelated_clean"] == result["unrelated"]
    assert result["withdrawal_honoured"]
    # The AI-edited photo is a derivative of the protected source, the plain copy a copy.
    assert result["derivative_found"] and result["copy_found"]
    text = "\n".join(lines)
    assert "beyond PDQ's reach" in text or result["copies_matched"] == result["copies"]
    # The video step: a trimmed, downscaled copy of a banked video matches and opens a case;
    # an unrelated clip does not (None only where this machine cannot decode video).
    assert result["video_found"] in (True, None)
    assert result["video_unrelated_clean"] in (True, None)
