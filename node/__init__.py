"""The running node: all I/O (HTTP, storage, media decoding, CLI, UI) lives here."""
