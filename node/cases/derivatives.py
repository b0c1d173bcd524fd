"""From one upload's confirmed matches to the matches a platform reviews (specs/derivatives.md 6).

A picture is looked up as whole-picture hashes and as tile hashes. Tile confirmations mean
nothing one by one: per holder, the tiles confirmed against one source group are put through
the rule (``protocol.derivative.classify``) and become one match, a ``copy`` or a
``derivative`` of that protected source, carrying the regional evidence. A whole-picture
match against the same source (its item releases the same group) joins that match rather than
opening a second one. Tiles of no group that reaches ``min_regions`` are dropped.

Generator provenance: a match against a ``generator`` bank says "a federation generator made
this picture". Only a roster member with the ``generator`` role may say so; from anyone else the
claim is downgraded to ``peer-sourced``. When the upload also matched a protected source, the
generator's confirmation is folded into that match (it is the same picture's story) instead of
opening a match of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from blindmatch.node import signals
from blindmatch.node.cases.matches import PeerMatch, ReviewMatch
from blindmatch.protocol import derivative as dv
from blindmatch.protocol.matching import QueryHash

__all__ = ["PeerMatch", "ReviewMatch", "review_matches"]

TILES_VARIANT = "tiles"  # the variant a match found by tiles alone reports


def _group(release: dict[str, Any]) -> bytes | None:
    value = release.get("group")
    if isinstance(value, str) and len(value) == 2 * dv.RELEASE_GROUP_BYTES:
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    return None


def _source_cells(scheme: dv.DerivativeScheme, release: dict[str, Any]) -> set[dv.Cell]:
    mask = release.get("source_cells")
    if not isinstance(mask, int) or isinstance(mask, bool):
        return set()
    try:
        return dv.mask_cells(scheme, mask)
    except dv.DerivativeError:
        return set()


def review_matches(
    queries: Sequence[QueryHash],
    results: Sequence[PeerMatch],
    has_role: Callable[[str, str], bool],
    scheme: dv.DerivativeScheme = dv.PDQ_TILES_1,
) -> list[ReviewMatch]:
    """Group one job's confirmed items into the matches to review (see the module docstring).

    ``has_role(node_id, role)`` answers from the roster.
    """
    quality_cells = {dv.Cell.parse(q.variant) for q in queries if dv.is_cell_variant(q.variant)}
    # A type judged per item (a video by its frames) takes its own results first.
    out: list[ReviewMatch] = []
    for adapter in signals.ADAPTERS:
        theirs, results = adapter.review(queries, results)
        out.extend(theirs)
    generator_hits: list[PeerMatch] = []
    for peer in sorted({r.peer for r in results}):
        mine = [r for r in results if r.peer == peer]
        confirmations: list[dv.TileConfirmation] = []
        tiles_of: dict[bytes, list[PeerMatch]] = {}
        cells_of: dict[bytes, set[dv.Cell]] = {}
        whole_of: dict[bytes, PeerMatch] = {}
        from_hub = has_role(peer, "hub")
        for r in mine:
            if not from_hub and (
                dv.is_cell_variant(r.variant) or r.release.get("provenance") == "protected-source"
            ):
                # Only a hub banks protected sources (specs/derivatives.md 5.1): another
                # holder's label is not believed. Its tiles count for nothing; its whole-picture
                # match is an ordinary peer-sourced one, without the source's group.
                if not dv.is_cell_variant(r.variant):
                    release = {
                        k: v for k, v in r.release.items() if k not in ("group", "source_cells")
                    }
                    release["provenance"] = "peer-sourced"
                    out.append(ReviewMatch(peer, r.item_ref, r.band, r.variant, release))
                continue
            group = _group(r.release)
            if dv.is_cell_variant(r.variant):
                if group is None or r.release.get("signal") != dv.SIGNAL:
                    continue  # a tile answer without its group cannot be judged
                confirmations.append(dv.TileConfirmation(dv.Cell.parse(r.variant), group))
                tiles_of.setdefault(group, []).append(r)
                cells_of.setdefault(group, set()).update(_source_cells(scheme, r.release))
            elif group is not None and r.release.get("provenance") == "protected-source":
                best = whole_of.get(group)
                if best is None or (r.band, r.item_ref) < (best.band, best.item_ref):
                    whole_of[group] = r
                cells_of.setdefault(group, set()).update(_source_cells(scheme, r.release))
            else:
                release = dict(r.release)
                if release.get("provenance") == "generator":
                    if has_role(peer, "generator"):
                        generator_hits.append(r)
                        continue
                    release["provenance"] = "peer-sourced"  # only a generator may say so
                out.append(ReviewMatch(peer, r.item_ref, r.band, r.variant, release))
        verdicts = dv.classify(scheme, quality_cells, confirmations, False, cells_of)
        judged = {v.group: v for v in verdicts if v.group is not None}
        for group in whole_of.keys() - judged.keys():
            # The whole picture matched but its tiles did not make a group: a near-exact copy
            # the tiles cannot judge (e.g. a picture too plain for tiles).
            judged[group] = dv.classify(scheme, quality_cells, [], True)[0]
        for group, verdict in sorted(judged.items()):
            whole = whole_of.get(group)
            verdict = replace(verdict, group=group, whole_match=whole is not None)
            if whole is not None:
                anchor = whole
            else:
                anchor = min(tiles_of[group], key=lambda r: (r.band, r.item_ref))
            evidence = verdict.as_result()
            release = {
                "provenance": "protected-source",
                "signal": "pdq-tiles-1",
                "group": group.hex(),
                "derivative": evidence,
            }
            categories = (whole.release if whole else anchor.release).get("categories")
            if isinstance(categories, list):
                release["categories"] = categories
            if whole is not None and "banked_crop" in whole.release:
                release["banked_crop"] = whole.release["banked_crop"]
            out.append(
                ReviewMatch(
                    holder=peer,
                    item_ref=anchor.item_ref,
                    band=anchor.band,
                    variant=anchor.variant if whole is not None else TILES_VARIANT,
                    release=release,
                    kind=verdict.kind,
                )
            )
    protected = [m for m in out if m.kind is not None]
    if protected and generator_hits:
        nodes = sorted({g.peer for g in generator_hits})
        for m in protected:
            m.generator_nodes = nodes
            m.release["generator"] = {"confirmed": True, "nodes": nodes}
    else:
        for g in generator_hits:
            release = dict(g.release)
            release["generator"] = {"confirmed": True, "nodes": [g.peer]}
            out.append(ReviewMatch(g.peer, g.item_ref, g.band, g.variant, release, None, [g.peer]))
    return out
