"""blindmatch: privacy-preserving federated matching of perceptual hashes.

Subpackages, with dependencies pointing one way (node -> protocol -> crypto):

- :mod:`blindmatch.crypto`   primitives (RFC 9497 OPRF, threshold test, signatures); pure, no I/O
- :mod:`blindmatch.protocol` wire messages, LSH bucket schemes, state machines; pure, no I/O
- :mod:`blindmatch.node`     the running node: HTTP, storage, banks, review, CLI
"""

__version__ = "0.1.0"
