"""Banks: the node's collections of hashes with provenance, their formats and validation."""
