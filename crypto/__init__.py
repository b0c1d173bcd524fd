"""Cryptographic primitives. Pure: bytes in, bytes out; no sockets, files, clocks or event loops.

Imports nothing from :mod:`blindmatch.protocol` or :mod:`blindmatch.node`.
"""
