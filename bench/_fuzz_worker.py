"""One atheris (libFuzzer) run of one target, in its own process: ``python -m bench._fuzz_worker
TARGET [libFuzzer flags] CORPUS_DIR``. bench/fuzz.py starts it, once per target, and restarts
it after a finding until the time is up."""

from __future__ import annotations

import contextlib
import sys

import atheris


def main() -> None:
    name = sys.argv[1]
    # The project and Pillow's Python decoders are instrumented (all of numpy and aiohttp
    # would take a minute).
    with atheris.instrument_imports(include=["blindmatch", "bench", "PIL"]):
        from bench import _fuzz_targets

        # The parsers the targets reach, instrumented for coverage feedback.
        from blindmatch.crypto import threshold  # noqa: F401
        from blindmatch.node.banks import formats  # noqa: F401
        from blindmatch.node.cases import policy  # noqa: F401
        from blindmatch.node.federation import peer_replicas, roster_watch  # noqa: F401
        from blindmatch.node.media import hashing  # noqa: F401
        from blindmatch.protocol import (  # noqa: F401
            canonical,
            envelope,
            feedback,
            index,
            matching,
            roster,
            schema,
            transparency,
            uploaders,
            video,
        )
    target = _fuzz_targets.TARGETS[name]
    target.seeds()  # build the shared world before fuzzing starts

    def one_input(data: bytes) -> None:
        with contextlib.suppress(target.refusals):
            target.run(data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
