"""Protected sources at the holder and the rules a querier applies to what it confirmed:
strict validation of tile hashes (nothing stored on any error, both backends), tiles that live
and die with their source, the copy/derivative/generator grouping, and the policy's
priorities."""

from __future__ import annotations

import os
from typing import Any

import pytest

from blindmatch.node.banks.service import BankService
from blindmatch.node.banks.validation import BankValidationError, SourceTile
from blindmatch.node.cases import derivatives as dc
from blindmatch.node.cases import policy as p
from blindmatch.node.clock import FixedClock
from blindmatch.node.storage import Database
from blindmatch.protocol import derivative as dv
from blindmatch.protocol.matching import QueryHash

SCHEME = dv.PDQ_TILES_1


def tile(cell: str = "g4c0r0", frame: int = 0, quality: int = 80, h: bytes | None = None):  # type: ignore[no-untyped-def]
    return SourceTile(cell, frame, h if h is not None else os.urandom(32), quality)


async def rows(db: Database) -> dict[str, list[dict[str, Any]]]:
    return {
        t: await db.fetch_all(f"SELECT * FROM {t}")
        for t in ("bank_items", "protected_sources", "source_tiles")
    }


@pytest.fixture
async def banks(db: Database, clock: FixedClock) -> BankService:
    service = BankService(db, clock)
    await service.create_bank("sources", provenance="protected-source", shared=True)
    await service.create_bank("ncii", provenance="survivor-submitted", shared=True)
    return service


async def test_a_source_is_stored_with_its_tiles_once(banks: BankService, db: Database) -> None:
    tiles = [tile("g4c0r0"), tile("g5c4r4", 2), tile("g4c3r1", 1)]
    whole = os.urandom(32)
    first = await banks.add_protected_source("sources", whole, quality=90, tiles=tiles)
    again = await banks.add_protected_source("sources", whole, quality=90, tiles=[tile()])
    assert first.created and not again.created
    assert again.item.item_ref == first.item.item_ref
    assert await banks.source_tiles(first.item.item_ref) == tiles  # the repeat added nothing
    [source] = await db.fetch_all("SELECT * FROM protected_sources")
    # The group is random, never the hash; the mask names frame 0's cells only.
    assert len(bytes(source["grp"])) == 8 and bytes(source["grp"]) not in whole
    assert dv.mask_cells(SCHEME, int(source["source_cells"])) == {dv.Cell(4, 0, 0)}
    refs = {bytes(r["item_ref"]) for r in await db.fetch_all("SELECT item_ref FROM source_tiles")}
    assert len(refs) == 3 and first.item.item_ref not in refs
    await banks.remove_by_ref(first.item.item_ref)  # an operator's removal takes the tiles too
    assert await rows(db) == {"bank_items": [], "protected_sources": [], "source_tiles": []}


@pytest.mark.parametrize(
    ("tiles", "message"),
    [
        ([tile("g3c0r0")], "not a cell of pdq-tiles-1"),
        ([tile("g4c4r0")], "not a cell label"),  # column out of a 4x4 grid
        ([tile("c0r0")], "not a cell label"),
        ([tile(frame=3)], "frame must be 0..2"),
        ([tile(frame=-1)], "frame must be 0..2"),
        ([tile(quality=29)], "below the tile quality gate"),
        ([tile(quality=101)], "quality must be an integer"),
        ([tile(h=b"\x00" * 31)], "must be 32 bytes"),
        ([tile(), tile()], "repeats cell g4c0r0 of frame 0"),
        ([tile(f"g4c{i % 4}r{i // 4 % 4}", i // 16) for i in range(124)], "at most 123 tiles"),
        ([("g4c0r0", 0, b"\x00" * 32, 80)], "must be a SourceTile"),
    ],
)
async def test_bad_tiles_are_refused_and_store_nothing(
    banks: BankService, db: Database, tiles: list[Any], message: str
) -> None:
    before = await rows(db)
    with pytest.raises(BankValidationError, match=message):
        await banks.add_protected_source("sources", os.urandom(32), quality=90, tiles=tiles)
    assert await rows(db) == before


async def test_only_a_protected_source_bank_takes_sources(banks: BankService, db: Database) -> None:
    before = await rows(db)
    with pytest.raises(BankValidationError, match="not a protected-source bank"):
        await banks.add_protected_source("ncii", os.urandom(32), quality=90, tiles=[tile()])
    assert await rows(db) == before


# --- the querier's grouping ---------------------------------------------------------------------

GROUP = bytes(range(8))
ALL_CELLS = dv.cells_mask(SCHEME, SCHEME.cells)


def tile_hit(cell: str, peer: str = "hub", group: bytes = GROUP, band: int = 39) -> dc.PeerMatch:
    release = dict(dv.release_for_tile(group, ALL_CELLS))
    release["group"] = group.hex()  # as the node stores it
    return dc.PeerMatch(peer, os.urandom(16), cell, band, release)


def whole_hit(peer: str, provenance: str, band: int = 8, group: bytes | None = None):  # type: ignore[no-untyped-def]
    release: dict[str, Any] = {"provenance": provenance, "signal": "pdq"}
    if group is not None:
        release.update(group=group.hex(), source_cells=ALL_CELLS)
    return dc.PeerMatch(peer, os.urandom(16), "identity", band, release)


def queries(cells: list[str]) -> list[QueryHash]:
    return [QueryHash(os.urandom(32), None, "identity")] + [
        QueryHash(os.urandom(32), None, c) for c in cells
    ]


def roles(mapping: dict[str, str]):  # type: ignore[no-untyped-def]
    # "hub" is a hub (only a hub's protected-source labels are believed), unless mapped.
    mapping = {"hub": "hub", **mapping}
    return lambda node, role: mapping.get(node) == role


EVERY_CELL = [c.label for c in SCHEME.cells]


def test_tiles_of_one_source_make_one_derivative_and_the_generator_joins_it() -> None:
    hits = [tile_hit(c) for c in EVERY_CELL[:10]]
    hits.append(whole_hit("gen", "generator"))
    [m] = dc.review_matches(queries(EVERY_CELL), hits, roles({"gen": "generator"}))
    assert m.kind == "derivative" and m.holder == "hub" and m.variant == dc.TILES_VARIANT
    assert m.release["derivative"]["matched_regions"] == sorted(
        EVERY_CELL[:10], key=lambda label: dv.Cell.parse(label)
    )
    assert m.release["generator"] == {"confirmed": True, "nodes": ["gen"]}
    assert m.generator_nodes == ["gen"]


def test_whole_picture_match_joins_its_group_as_a_copy() -> None:
    whole = whole_hit("hub", "protected-source", group=GROUP)
    hits = [tile_hit(c) for c in EVERY_CELL] + [whole]
    [m] = dc.review_matches(queries(EVERY_CELL), hits, roles({}))
    assert m.kind == "copy" and m.item_ref == whole.item_ref
    assert m.release["derivative"]["whole_image_match"] is True


def test_a_lone_tile_or_a_groupless_tile_is_no_match() -> None:
    lone = tile_hit("g4c0r0")
    groupless = dc.PeerMatch("hub", os.urandom(16), "g4c1r0", 39, {"signal": "pdq-tile"})
    assert dc.review_matches(queries(EVERY_CELL), [lone, groupless], roles({})) == []


def test_generator_claims_only_from_generators() -> None:
    claim = whole_hit("hub", "generator")
    [m] = dc.review_matches(queries([]), [claim], roles({"gen": "generator"}))
    assert m.release["provenance"] == "peer-sourced" and not m.generator_nodes
    real = whole_hit("gen", "generator")
    [m] = dc.review_matches(queries([]), [real], roles({"gen": "generator"}))
    assert m.release["provenance"] == "generator" and m.generator_nodes == ["gen"]


# --- policy -------------------------------------------------------------------------------------


def facts(**over: Any) -> p.MatchFacts:
    base: dict[str, Any] = dict(
        holder="hub", band=8, provenance="protected-source", confirmations=5, disputes=0,
        withdrawn=False, allowlisted=False, matches_this_window=1, baseline_per_window=0.0,
    )  # fmt: skip
    base.update(over)
    return p.MatchFacts(**base)


def test_policy_orders_derivative_generator_copy_and_never_acts_on_a_copy() -> None:
    pol = p.parse(
        {
            "auto_action": {
                "provenance": ["protected-source", "generator"],
                "trusted_sources": ["hub"],
                "max_band": 31,
            }
        }
    )
    copy = p.decide(pol, facts(kind="copy"))
    plain = p.decide(pol, facts(kind=None))  # a protected source's whole match, unjudged
    assert copy.action == plain.action == "review"
    assert copy.priority < pol.review.base_priority
    derivative = p.decide(pol, facts(kind="derivative", band=39, confirmations=0))
    confirmed = p.decide(
        pol, facts(kind="derivative", band=39, confirmations=0, generator_confirmed=True)
    )
    assert derivative.action == confirmed.action == "review"
    assert confirmed.priority > derivative.priority > copy.priority
    assert "generator" in confirmed.reason
    # auto-action stays possible for a derivative the policy trusts
    assert p.decide(pol, facts(kind="derivative")).action == "auto-action"


def test_policy_priorities_are_configurable_and_validated() -> None:
    pol = p.parse({"review": {"derivative_priority": 5, "generator_priority": 0}})
    assert pol.review.derivative_priority == 5 and pol.review.generator_priority == 0
    with pytest.raises(p.PolicyError, match=r"review\.protected_copy_priority"):
        p.parse({"review": {"protected_copy_priority": "low"}})
    with pytest.raises(p.PolicyError, match="unknown setting"):
        p.parse({"review": {"derivative_bonus": 5}})
