"""Developer and auditor tools: a local federation, the demos, the conformance runner."""
