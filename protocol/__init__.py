"""Wire messages, LSH bucket schemes and protocol state machines ("sans-I/O").

Pure: every step is a function of bytes and explicit inputs (time and randomness are passed
in), so each one can be driven from a plain test. Imports only :mod:`blindmatch.crypto`.
"""
