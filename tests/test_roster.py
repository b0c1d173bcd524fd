"""The federation roster: k-of-n governance signatures, validation, serial and expiry."""

from __future__ import annotations

import copy

import pytest

from blindmatch.crypto import oprf, signing
from blindmatch.protocol import roster as r

GOV = [signing.SigningKey.generate() for _ in range(3)]
PINNED = [k.public_key for k in GOV]
NOW = 1_800_000_000_000


def body(**over):
    b = {
        "federation": "test-fed",
        "serial": 3,
        "issued_ms": NOW - 1000,
        "expires_ms": NOW + 86_400_000,
        "members": [
            {
                "id": "hub-1",
                "signing_key": signing.SigningKey.generate().public_key.hex(),
                "voprf_key": oprf.generate_key_pair().pk.hex(),
                "endpoint": "http://127.0.0.1:8701",
                "roles": ["hub"],
            },
            {
                "id": "platform-a",
                "signing_key": signing.SigningKey.generate().public_key.hex(),
                "voprf_key": None,
                "endpoint": "https://platform-a.example/fed",
                "roles": ["platform"],
                "budget": {"evaluations_per_hour": 1000},
            },
        ],
    }
    b.update(over)
    return b


def test_two_of_three_verifies() -> None:
    doc = r.sign_roster(body(), GOV[:2])
    ro = r.verify_roster(doc, PINNED, 2, NOW)
    assert set(ro.members) == {"hub-1", "platform-a"}
    assert ro.members["platform-a"].budget["evaluations_per_hour"] == 1000
    assert (
        ro.members["platform-a"].budget["evaluations_per_day"]
        == r.DEFAULT_BUDGET["evaluations_per_day"]
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: r.sign_roster(body(), GOV[:1]), "1 valid governance signature"),
        (lambda: r.sign_roster(body(), [signing.SigningKey.generate()] * 2), "0 valid"),
        (lambda: r.sign_roster(body(expires_ms=NOW - 1), GOV), "not valid now"),
        (lambda: r.sign_roster(body(serial=1), GOV), "older than"),
        (lambda: r.sign_roster(body(members=[]), GOV), "non-empty list"),
        (lambda: r.sign_roster(body(extra=1), GOV), "fields must be exactly"),
    ],
)
def test_refusals(make, message: str) -> None:
    with pytest.raises(r.RosterError, match=message):
        r.verify_roster(make(), PINNED, 2, NOW, min_serial=2)


def test_tampering_after_signing_is_detected() -> None:
    doc = r.sign_roster(body(), GOV)
    doc2 = copy.deepcopy(doc)
    doc2["roster"]["members"][1]["roles"] = ["hub"]
    with pytest.raises(r.RosterError, match="does not verify"):
        r.verify_roster(doc2, PINNED, 2, NOW)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id", "Bad Id", "id"),
        ("endpoint", "ftp://x", "endpoint"),
        ("roles", ["king"], "roles"),
        ("voprf_key", "00" * 32, "identity"),
        ("signing_key", "zz", "hex"),
        ("budget", {"unknown": 1}, "budget"),
    ],
)
def test_member_validation(field: str, value, message: str) -> None:
    b = body()
    b["members"][0][field] = value
    with pytest.raises(r.RosterError, match=message):
        r.verify_roster(r.sign_roster(b, GOV), PINNED, 2, NOW)
