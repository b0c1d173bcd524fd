"""The bank service on both backends: CRUD, items, expiry, withdrawal, feed entries, import and
export, and refusal of bad input without any change of state."""

from __future__ import annotations

import io
import json
from typing import Any

import msgpack
import pytest

from blindmatch.node.banks.formats import ImportFormatError
from blindmatch.node.banks.service import (
    Bank,
    BankExistsError,
    BankItem,
    BankNotFoundError,
    BankService,
    ItemNotFoundError,
    ItemWithdrawnError,
    WithdrawalRefusedError,
)
from blindmatch.node.banks.validation import BankValidationError
from blindmatch.node.clock import FixedClock
from blindmatch.node.storage import Database, FeedLog

H1 = "f" * 64
H2 = "0123456789abcdef" * 4
H3 = "a5" * 32
SECRET = b"s" * 32


def pdq(n: int) -> str:
    return f"{n:064x}"


async def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables a bank operation may touch."""
    tables = {
        "banks": "id",
        "bank_items": "id",
        "feed_entries": "feed, seq",
    }
    return {t: await db.fetch_all(f"SELECT * FROM {t} ORDER BY {o}") for t, o in tables.items()}


@pytest.fixture
def banks(db: Database, clock: FixedClock) -> BankService:
    return BankService(db, clock)


async def feed_kinds(db: Database) -> list[tuple[str, dict[str, Any]]]:
    entries, cursor = [], 0
    while page := await FeedLog(db).read("bank-items", cursor, 1000):
        entries.extend(page)
        cursor = page[-1].seq
    return [(e.kind, msgpack.unpackb(e.payload, raw=False)) for e in entries]


# --- banks -------------------------------------------------------------------------------------


async def test_bank_crud(banks: BankService, clock: FixedClock) -> None:
    bank = await banks.create_bank(
        "survivors",
        provenance="survivor-submitted",
        description="hashes submitted by survivors through the hub",
        categories=["ncii", "ncii"],
    )
    assert isinstance(bank, Bank)
    assert bank.categories == ("ncii",)
    assert bank.distance_threshold == 31
    assert bank.enabled and not bank.shared
    assert bank.created_at == clock.now()
    with pytest.raises(BankExistsError):
        await banks.create_bank("survivors", provenance="generator")
    await banks.create_bank("aaa", provenance="moderator-confirmed", distance_threshold=20)
    assert [b.name for b in await banks.list_banks()] == ["aaa", "survivors"]
    clock.advance(5)
    updated = await banks.update_bank("survivors", distance_threshold=24, description="x")
    assert updated.distance_threshold == 24
    assert updated.updated_at == clock.now()
    assert not (await banks.set_enabled("survivors", False)).enabled
    assert (await banks.set_enabled("survivors", True)).enabled
    assert await banks.delete_bank("aaa") == 0
    with pytest.raises(BankNotFoundError):
        await banks.get_bank("aaa")


BAD_BANKS: list[tuple[dict[str, Any], str]] = [
    ({"name": "", "provenance": "generator"}, "bank name"),
    ({"name": "has space", "provenance": "generator"}, "bank name"),
    ({"name": "x" * 65, "provenance": "generator"}, "bank name"),
    ({"name": 7, "provenance": "generator"}, "bank name"),
    ({"name": "ok", "provenance": "someone"}, "provenance"),
    ({"name": "ok", "provenance": "generator", "distance_threshold": 64}, "threshold"),
    ({"name": "ok", "provenance": "generator", "distance_threshold": -1}, "threshold"),
    ({"name": "ok", "provenance": "generator", "distance_threshold": True}, "threshold"),
    ({"name": "ok", "provenance": "generator", "distance_threshold": "31"}, "threshold"),
    ({"name": "ok", "provenance": "generator", "categories": "ncii"}, "categories"),
    ({"name": "ok", "provenance": "generator", "categories": ["bad label"]}, "label"),
    ({"name": "ok", "provenance": "generator", "enabled": 1}, "enabled"),
]


async def test_bad_bank_input_changes_nothing(banks: BankService, db: Database) -> None:
    # One database for all cases: the setup, not the check, is what costs time.
    before = await snapshot(db)
    for kwargs, message in BAD_BANKS:
        with pytest.raises(BankValidationError, match=message):
            await banks.create_bank(**kwargs)
        assert await snapshot(db) == before, kwargs


# --- items -------------------------------------------------------------------------------------


async def test_add_list_remove_items(banks: BankService, clock: FixedClock) -> None:
    await banks.create_bank("b", provenance="moderator-confirmed")
    first = await banks.add_item("b", "pdq", H1, quality=90, categories=["ncii"])
    assert first.created
    item = first.item
    assert isinstance(item, BankItem)
    assert item.hash == bytes.fromhex(H1)
    assert len(item.item_ref) == 16
    assert item.hash.hex() not in repr(item)  # hashes stay out of logs
    again = await banks.add_item("b", "pdq", H1.upper())
    assert not again.created and again.item.item_ref == item.item_ref
    await banks.add_item("b", "sha256", bytes.fromhex(H2))
    # A vpdq item is a video: its ThreatExchange signal string (here one frame).
    await banks.add_item("b", "vpdq", json.dumps([f"{H3},60,0.0"]))
    assert len(await banks.list_items("b")) == 3
    assert [i.signal_type for i in await banks.list_items("b", signal_type="pdq")] == ["pdq"]
    assert await banks.remove_item("b", "sha256", H2)
    assert not await banks.remove_item("b", "sha256", H2)
    assert await banks.remove_by_ref(item.item_ref.hex())
    assert not await banks.remove_by_ref(item.item_ref)
    assert [i.signal_type for i in await banks.list_items("b")] == ["vpdq"]
    assert await banks.count_items("b") == {"active": 1, "expired": 0, "withdrawn": 0}


async def test_same_hash_in_two_banks(banks: BankService) -> None:
    await banks.create_bank("a", provenance="generator")
    await banks.create_bank("b", provenance="generator")
    ra = await banks.add_item("a", "pdq", H1)
    rb = await banks.add_item("b", "pdq", H1)
    assert ra.created and rb.created and ra.item.item_ref != rb.item.item_ref


BAD_ITEMS: list[tuple[Any, Any, dict[str, Any], str]] = [
    ("pdq", "f" * 63, {}, "exactly 64 hex characters, got 63"),
    ("pdq", "f" * 65, {}, "exactly 64 hex characters, got 65"),
    ("pdq", "g" + "f" * 63, {}, "non-hex character at position 1"),
    ("pdq", " " + "f" * 63, {}, "non-hex"),
    ("pdq", 12345, {}, "must be bytes"),
    ("pdq", b"\x00" * 31, {}, "must be 32 bytes, got 31"),
    ("pdq", None, {}, "got null"),
    ("md5", "f" * 32, {}, "unknown signal type 'md5'"),
    (3, H1, {}, "signal_type must be a string"),
    ("pdq", H1, {"quality": 101}, "quality"),
    ("pdq", H1, {"quality": "high"}, "quality"),
    ("pdq", H1, {"categories": [1]}, "label"),
    ("pdq", H1, {"expires_at": "tomorrow"}, "expires_at"),
    ("pdq", H1, {"expires_at": 1}, "not in the future"),
    ("pdq", H1, {"provenance": {"k": [1]}}, "provenance"),
    ("pdq", H1, {"provenance": {"k": "x" * 3000}}, "larger than"),
    ("pdq", H1, {"source": ""}, "source"),
    ("pdq", H1, {"withdrawal_secret": b"short"}, "withdrawal secret"),
    ("pdq", H1, {"withdrawal_secret": "text" * 8}, "withdrawal secret"),
    ("pdq", H1, {"quality": 20, "min_quality": 50}, "below the minimum"),
]


async def test_bad_item_input_changes_nothing(banks: BankService, db: Database) -> None:
    await banks.create_bank("b", provenance="moderator-confirmed", shared=True)
    before = await snapshot(db)
    for signal_type, value, kwargs, message in BAD_ITEMS:
        with pytest.raises(BankValidationError, match=message):
            await banks.add_item("b", signal_type, value, **kwargs)
        assert await snapshot(db) == before, (signal_type, kwargs, message)


async def test_add_to_missing_bank(banks: BankService, db: Database) -> None:
    before = await snapshot(db)
    with pytest.raises(BankNotFoundError):
        await banks.add_item("nope", "pdq", H1)
    assert await snapshot(db) == before


async def test_expiry(banks: BankService, clock: FixedClock) -> None:
    await banks.create_bank("b", provenance="peer-sourced")
    await banks.add_item("b", "pdq", H1, expires_at=clock.now() + 100)
    await banks.add_item("b", "pdq", H2)
    assert len(await banks.list_items("b")) == 2
    clock.advance(100)
    live = await banks.list_items("b")
    assert [i.hash.hex() for i in live] == [H2]
    everything = await banks.list_items("b", include_inactive=True)
    assert len(everything) == 2
    assert not everything[0].is_active(clock.now())
    assert [a.hash.hex() for a in await banks.active_items("pdq")] == [H2]
    assert await banks.count_items("b") == {"active": 1, "expired": 1, "withdrawn": 0}


async def test_active_items_respect_enabled_and_paging(banks: BankService) -> None:
    await banks.create_bank("on", provenance="generator", distance_threshold=20)
    await banks.create_bank("off", provenance="generator", enabled=False)
    for n in range(5):
        await banks.add_item("on", "pdq", pdq(n + 1))
    await banks.add_item("off", "pdq", pdq(99))
    await banks.add_item("on", "sha256", pdq(7))
    collected = [a async for a in banks.iter_active_items("pdq")]
    assert [a.hash for a in collected] == [bytes.fromhex(pdq(n + 1)) for n in range(5)]
    assert {a.distance_threshold for a in collected} == {20}
    assert len(await banks.active_items("pdq", limit=2)) == 2
    assert [a.bank for a in await banks.active_items("pdq", banks=["off"])] == ["off"]


# --- withdrawal --------------------------------------------------------------------------------


async def test_survivor_withdrawal_with_secret(
    banks: BankService, db: Database, clock: FixedClock
) -> None:
    await banks.create_bank("hub", provenance="survivor-submitted", shared=True)
    item = (await banks.add_item("hub", "pdq", H1, withdrawal_secret=SECRET)).item
    assert item.has_withdrawal_secret
    stored = await db.fetch_value("SELECT withdrawal_secret_hash FROM bank_items")
    assert SECRET not in bytes(stored)  # only a hash of the secret is kept

    before = await snapshot(db)
    with pytest.raises(WithdrawalRefusedError):
        await banks.withdraw_with_secret(item.item_ref, b"x" * 32, reason="mine")
    with pytest.raises(WithdrawalRefusedError):  # unknown ref: the same refusal
        await banks.withdraw_with_secret(b"\x01" * 16, SECRET)
    with pytest.raises(BankValidationError):
        await banks.withdraw_with_secret(item.item_ref, b"short")
    assert await snapshot(db) == before

    clock.advance(10)
    withdrawn = await banks.withdraw_with_secret(item.item_ref.hex(), SECRET, reason="mine")
    assert withdrawn.withdrawn_at == clock.now()
    assert withdrawn.withdrawal_reason == "mine"
    assert await banks.list_items("hub") == []
    assert await banks.active_items("pdq") == []
    # Idempotent, and the tombstone keeps the hash from coming back silently.
    assert (await banks.withdraw_with_secret(item.item_ref, SECRET)).withdrawn_at == clock.now()
    with pytest.raises(ItemWithdrawnError):
        await banks.add_item("hub", "pdq", H1)
    kinds = await feed_kinds(db)
    assert [k for k, _ in kinds] == ["item-added", "item-withdrawn"]
    assert kinds[1][1]["reason"] == "withdrawn"
    assert "mine" not in repr(kinds)  # the free-text reason stays local


async def test_secretless_item_refuses_survivor_withdrawal(banks: BankService) -> None:
    await banks.create_bank("b", provenance="moderator-confirmed")
    item = (await banks.add_item("b", "pdq", H1)).item
    with pytest.raises(WithdrawalRefusedError):
        await banks.withdraw_with_secret(item.item_ref, SECRET)
    assert (await banks.withdraw(item.item_ref, reason="appeal upheld")).withdrawn_at is not None
    with pytest.raises(ItemNotFoundError):
        await banks.withdraw(b"\x02" * 16)
    with pytest.raises(BankValidationError):
        await banks.withdraw("zz" * 16)


# --- feed --------------------------------------------------------------------------------------


async def test_shared_bank_mutations_reach_the_feed(db: Database, clock: FixedClock) -> None:
    calls: list[bytes] = []

    async def hook(item: BankItem, bank: Bank) -> dict[str, Any]:
        calls.append(item.item_ref)
        return {"index_keys": [b"k1", b"k2"]}

    banks = BankService(db, clock, on_item_added=hook)
    await banks.create_bank("private", provenance="moderator-confirmed")
    await banks.create_bank("shared", provenance="moderator-confirmed", shared=True)
    await banks.add_item("private", "pdq", H1)
    added = (await banks.add_item("shared", "pdq", H1, categories=["ncii"])).item
    await banks.add_item("shared", "pdq", H1)  # already present: no new entry
    kinds = await feed_kinds(db)
    assert [k for k, _ in kinds] == ["item-added"]
    payload = kinds[0][1]
    assert payload["item_ref"] == added.item_ref
    assert payload["signal_type"] == "pdq" and payload["bank"] == "shared"
    assert payload["index_keys"] == [b"k1", b"k2"]
    assert bytes.fromhex(H1) not in msgpack.packb(payload)  # the raw hash never travels
    assert calls == [added.item_ref]

    await banks.update_bank("shared", distance_threshold=20)
    await banks.remove_item("shared", "pdq", H1)
    await banks.add_item("shared", "pdq", H2)
    # Sharing the private bank publishes its live items; unsharing withdraws them.
    await banks.update_bank("private", shared=True)
    await banks.update_bank("private", shared=False)
    await banks.delete_bank("shared")
    kinds = await feed_kinds(db)
    assert [k for k, _ in kinds] == [
        "item-added",
        "bank-updated",
        "item-withdrawn",
        "item-added",
        "item-added",
        "item-withdrawn",
        "item-withdrawn",
    ]
    assert [p.get("reason") for _, p in kinds if "reason" in p] == [
        "removed",
        "unshared",
        "bank-deleted",
    ]


async def test_failing_hook_leaves_nothing(db: Database, clock: FixedClock) -> None:
    async def broken(item: BankItem, bank: Bank) -> dict[str, Any]:
        raise RuntimeError("OPRF key unavailable")

    banks = BankService(db, clock, on_item_added=broken)
    await banks.create_bank("shared", provenance="generator", shared=True)
    before = await snapshot(db)
    with pytest.raises(RuntimeError):
        await banks.add_item("shared", "pdq", H1)
    assert await snapshot(db) == before


async def test_hook_may_not_override_core_fields(db: Database, clock: FixedClock) -> None:
    banks = BankService(db, clock, on_item_added=lambda item, bank: _async({"item_ref": b"x"}))
    await banks.create_bank("shared", provenance="generator", shared=True)
    with pytest.raises(ValueError, match="may not set"):
        await banks.add_item("shared", "pdq", H1)
    assert await banks.list_items("shared") == []


async def _async(value: Any) -> Any:
    return value


# --- media -------------------------------------------------------------------------------------


def fake_hasher(media: bytes) -> list[tuple[str, bytes, int | None]]:
    import hashlib

    digest = hashlib.sha256(media).digest()
    return [("pdq", digest[::-1], 80 if media != b"flat" else 10), ("sha256", digest, None)]


async def test_add_and_remove_by_media(banks: BankService) -> None:
    await banks.create_bank("b", provenance="moderator-confirmed")
    results = await banks.add_media("b", b"picture", fake_hasher, categories=["ncii"])
    assert [r.item.signal_type for r in results] == ["pdq", "sha256"]
    assert all(r.created for r in results)
    # A flat picture's PDQ is below the gate; its exact hash is still banked.
    flat = await banks.add_media("b", b"flat", fake_hasher, min_quality=50)
    assert [r.item.signal_type for r in flat] == ["sha256"]
    assert await banks.remove_media("b", b"picture", fake_hasher) == 2
    assert len(await banks.list_items("b")) == 1


async def test_bad_media_hasher_output_changes_nothing(banks: BankService, db: Database) -> None:
    await banks.create_bank("b", provenance="moderator-confirmed")
    before = await snapshot(db)
    with pytest.raises(BankValidationError):
        await banks.add_media("b", b"x", lambda m: [("pdq", b"short", 90)])
    with pytest.raises(BankValidationError):
        await banks.add_media("b", b"", fake_hasher)
    with pytest.raises(BankValidationError):
        await banks.add_media("b", b"x", lambda m: ["not a tuple"])
    assert await snapshot(db) == before


# --- import / export ---------------------------------------------------------------------------


def jsonl(*records: dict[str, Any]) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in records))


async def test_import_export_roundtrip(db: Database, clock: FixedClock) -> None:
    banks = BankService(db, clock)
    await banks.create_bank("src", provenance="moderator-confirmed")
    source = jsonl(
        {"signal_type": "pdq", "hash": H1, "quality": 100, "categories": ["ncii"]},
        {"signal_type": "sha256", "hash": H2, "expires_at": clock.now() + 1000},
        {"signal_type": "pdq", "hash": H1},  # a duplicate line: counted, not doubled
    )
    report = await banks.import_items("src", source, origin="import:list.jsonl")
    assert (report.added, report.already_present, report.skipped) == (2, 1, [])
    items = await banks.list_items("src")
    assert {i.source for i in items} == {"import:list.jsonl"}

    private = [line async for line in banks.export_items("src", include_private=True)]
    portable = [line async for line in banks.export_items("src")]
    assert "item_ref" not in portable[0] and "item_ref" in private[0]
    assert json.loads(portable[0]) == {
        "signal_type": "pdq",
        "hash": H1,
        "quality": 100,
        "categories": ["ncii"],
        "expires_at": None,
        "added_at": clock.now(),
    }
    # Restoring a backup keeps the references survivors hold.
    await banks.create_bank("restored", provenance="moderator-confirmed")
    with pytest.raises(ImportFormatError, match="item_ref is already used"):
        await banks.import_items("restored", io.StringIO("\n".join(private)))
    await banks.delete_bank("src")
    await banks.import_items("restored", io.StringIO("\n".join(private)))
    assert {i.item_ref for i in await banks.list_items("restored")} == {i.item_ref for i in items}


async def test_import_keeps_withdrawal_secret_hash(banks: BankService) -> None:
    await banks.create_bank("hub", provenance="survivor-submitted")
    item = (await banks.add_item("hub", "pdq", H1, withdrawal_secret=SECRET)).item
    lines = [line async for line in banks.export_items("hub", include_private=True)]
    await banks.delete_bank("hub")
    await banks.create_bank("hub", provenance="survivor-submitted")
    await banks.import_items("hub", lines)
    withdrawn = await banks.withdraw_with_secret(item.item_ref, SECRET)
    assert withdrawn.withdrawn_at is not None


async def test_import_is_all_or_nothing_with_line_numbers(banks: BankService, db: Database) -> None:
    await banks.create_bank("b", provenance="moderator-confirmed", shared=True)
    await banks.add_item("b", "pdq", H3)
    before = await snapshot(db)
    source = io.BytesIO(
        b"\n".join(
            [
                json.dumps({"signal_type": "pdq", "hash": H1}).encode(),
                b"",
                json.dumps({"signal_type": "pdq", "hash": "f" * 63}).encode(),
                b"not json",
                json.dumps({"signal_type": "md5", "hash": H2}).encode(),
                json.dumps({"signal_type": "pdq", "hash": H2, "qualty": 3}).encode(),
                json.dumps({"signal_type": "pdq", "hash": H2, "quality": "100"}).encode(),
                b'{"signal_type": "pdq", "signal_type": "pdq", "hash": "' + H2.encode() + b'"}',
                b'{"signal_type": "pdq", "hash": "' + H2.encode() + b'", "quality": NaN}',
                b"[1, 2]",
                b"\xff\xfe not utf-8",
                json.dumps({"signal_type": "pdq", "hash": H2}).encode() + b" " * 70_000,
                json.dumps({"hash": H2}).encode(),
            ]
        )
    )
    with pytest.raises(ImportFormatError) as caught:
        await banks.import_items("b", source)
    message = str(caught.value)
    assert "nothing was imported" in message
    expected = {
        3: "exactly 64 hex characters, got 63",
        4: "not valid JSON",
        5: "unknown signal type 'md5'",
        6: "unknown field 'qualty'",
        7: "quality must be an integer",
        8: "duplicate key",
        9: "NaN is not allowed",
        10: "expected a JSON object",
        11: "not valid UTF-8",
        12: "longer than 65536 bytes",
        13: "missing field 'signal_type'",
    }
    assert {p.line for p in caught.value.problems} == set(expected)
    for problem in caught.value.problems:
        assert expected[problem.line] in problem.message
    assert await snapshot(db) == before


async def test_import_errors_from_the_database_roll_back(banks: BankService, db: Database) -> None:
    await banks.create_bank("a", provenance="generator")
    await banks.create_bank("b", provenance="generator")
    taken = (await banks.add_item("a", "pdq", H1)).item.item_ref.hex()
    before = await snapshot(db)
    source = jsonl(
        {"signal_type": "pdq", "hash": H2},
        {"signal_type": "pdq", "hash": H3, "item_ref": taken},
    )
    with pytest.raises(ImportFormatError, match="line 2: item_ref is already used"):
        await banks.import_items("b", source)
    assert await snapshot(db) == before


async def test_import_skips_withdrawn_expired_and_low_quality(
    banks: BankService, clock: FixedClock
) -> None:
    await banks.create_bank("b", provenance="moderator-confirmed")
    item = (await banks.add_item("b", "pdq", H1)).item
    await banks.withdraw(item.item_ref)
    report = await banks.import_items(
        "b",
        jsonl(
            {"signal_type": "pdq", "hash": H1},
            {"signal_type": "pdq", "hash": H2, "expires_at": clock.now()},
            {"signal_type": "pdq", "hash": H3, "quality": 10},
            {"signal_type": "pdq", "hash": pdq(5), "quality": 90},
        ),
        min_quality=50,
    )
    assert report.added == 1
    assert [(p.line, p.message) for p in report.skipped] == [
        (1, "skipped: withdrawn earlier"),
        (2, "skipped: already expired"),
        (3, "skipped: quality 10 < 50"),
    ]


async def test_import_threatexchange_formats(banks: BankService) -> None:
    await banks.create_bank("te", provenance="peer-sourced")
    report = await banks.import_items(
        "te", io.BytesIO(f"pdq {H1}\npdq {H2}\n".encode()), fmt="te-lines"
    )
    assert report.added == 2
    report = await banks.import_items(
        "te", io.BytesIO(f"{H3}\n".encode()), fmt="te-lines", signal_type="pdq"
    )
    assert report.added == 1
    csv_text = (
        "collab,signal_type,signal_str,category,tags\n"
        f"Sample Data,pdq,{pdq(1)},POSITIVE_CLASS,ncii media_priority_s1\n"
        f"Sample Data,pdq,{pdq(2)},DISPUTED,ncii\n"
    )
    report = await banks.import_items("te", io.StringIO(csv_text), fmt="te-csv")
    assert report.added == 1
    assert [p.line for p in report.skipped] == [3]
    (item,) = [i for i in await banks.list_items("te") if i.hash.hex() == pdq(1)]
    assert item.categories == ("ncii", "media_priority_s1")
    assert item.provenance == {"te_collab": "Sample Data", "te_category": "POSITIVE_CLASS"}
    report = await banks.import_items(
        "te", io.StringIO(json.dumps({"pdq": pdq(3), "video_md5": "0" * 32})), fmt="hma-json"
    )
    assert report.added == 1 and report.unsupported == {"video_md5": 1}


async def test_feed_can_be_switched_off(db: Database, clock: FixedClock) -> None:
    banks = BankService(db, clock, feed=None)
    await banks.create_bank("shared", provenance="generator", shared=True)
    item = (await banks.add_item("shared", "pdq", H1)).item
    await banks.withdraw(item.item_ref)
    assert await feed_kinds(db) == []


async def test_import_into_shared_bank_publishes_each_new_item(
    db: Database, clock: FixedClock
) -> None:
    hooked: list[bytes] = []

    async def hook(item: BankItem, bank: Bank) -> dict[str, Any]:
        hooked.append(item.item_ref)
        return {"index_keys": [item.item_ref[:4]]}

    banks = BankService(db, clock, on_item_added=hook)
    await banks.create_bank("shared", provenance="peer-sourced", shared=True)
    await banks.add_item("shared", "pdq", pdq(1))
    lines = [json.dumps({"signal_type": "pdq", "hash": pdq(n)}) for n in range(1, 1201)]
    report = await banks.import_items("shared", lines)
    assert (report.added, report.already_present) == (1199, 1)
    kinds = await feed_kinds(db)
    assert len(kinds) == 1200 and {k for k, _ in kinds} == {"item-added"}
    refs = {i.item_ref async for i in _all_items(banks, "shared")}
    assert {p["item_ref"] for _, p in kinds} == refs == set(hooked)
    assert all(p["index_keys"] == [p["item_ref"][:4]] for _, p in kinds)


async def _all_items(banks: BankService, bank: str):
    after = 0
    while page := await banks.list_items(bank, after_id=after):
        for item in page:
            yield item
        after = page[-1].id
