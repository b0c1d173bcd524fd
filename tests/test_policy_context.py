"""Context on uploads in the policy: it moves review priority, it never acts on its own, and a
self-upload is never acted on without a person."""

from __future__ import annotations

import itertools
import tomllib

import pytest

from blindmatch.node.cases import policy as policy_mod
from blindmatch.node.cases.context import (
    ContextError,
    Signals,
    UploadContext,
    identifier,
    parse,
    parse_weights,
)

AUTO = policy_mod.parse(
    {
        "auto_action": {
            "max_band": 8,
            "provenance": ["moderator-confirmed"],
            "trusted_sources": ["hub"],
            "min_confirmations": 0,
        }
    }
)


def facts(band: int = 4, **over) -> policy_mod.MatchFacts:  # type: ignore[no-untyped-def]
    base = dict(
        holder="hub", band=band, provenance="moderator-confirmed", confirmations=0, disputes=0,
        withdrawn=False, allowlisted=False, matches_this_window=1, baseline_per_window=1.0,
    )  # fmt: skip
    base.update(over)
    return policy_mod.MatchFacts(**base)


HEAVY = UploadContext(
    uploader_ref="acct-9", account_age_days=1, strikes=5, open_reports=3, surface="public-post"
)


def test_context_raises_and_lowers_review_priority() -> None:
    policy = policy_mod.Policy()  # no automatic action at all
    plain = policy_mod.decide(policy, facts())
    assert plain.action == "review"
    heavy = policy_mod.decide(policy, facts(context=HEAVY, signals=Signals(recidivism=2)))
    assert heavy.action == "review" and heavy.priority > plain.priority
    assert "new-account" in heavy.reason and "repeat-uploader-here" in heavy.reason
    elsewhere = policy_mod.decide(policy, facts(signals=Signals(known_elsewhere=True)))
    assert elsewhere.priority == plain.priority + 30 and "known-elsewhere" in elsewhere.reason
    own = policy_mod.decide(policy, facts(context=UploadContext(self_upload=True)))
    assert own.action == "review" and own.priority < plain.priority
    assert own.signals == ("self-upload",)


def test_context_never_auto_actions_on_its_own() -> None:
    # Every combination of context and signals, on matches that do not qualify by themselves
    # (too far, untrusted source, wrong provenance): always a person.
    for band, holder, prov in [(20, "hub", "moderator-confirmed"), (4, "other", None),
                               (4, "hub", "survivor-submitted")]:  # fmt: skip
        for age, strikes, reports, surface, rec, known in itertools.product(
            (None, 0, 1000),
            (None, 0, 50),
            (None, 0, 9),
            (None, "public-post"),
            (0, 5),
            (False, True),
        ):
            ctx = UploadContext(
                account_age_days=age, strikes=strikes, open_reports=reports, surface=surface
            )
            v = policy_mod.decide(
                AUTO, facts(band, holder=holder, provenance=prov, context=ctx,
                            signals=Signals(recidivism=rec, known_elsewhere=known)),
            )  # fmt: skip
            assert v.action == "review", (band, holder, prov, ctx, rec, known)


def test_a_self_upload_is_never_auto_actioned() -> None:
    qualifying = facts()
    assert policy_mod.decide(AUTO, qualifying).action == "auto-action"
    # context that is not a self-upload leaves the automatic action as it was
    assert policy_mod.decide(AUTO, facts(context=HEAVY)).action == "auto-action"
    for signals in (Signals(), Signals(recidivism=3, known_elsewhere=True)):
        v = policy_mod.decide(
            AUTO, facts(context=UploadContext(self_upload=True, strikes=9), signals=signals)
        )
        assert v.action == "review" and "self-upload" in v.reason


def test_policy_file_context_table_is_validated() -> None:
    text = """
    [context]
    new_account_days = 7
    known_elsewhere_priority = 40
    surface_priority = { "private-message" = 5 }
    """
    p = policy_mod.parse(tomllib.loads(text))
    assert p.context.new_account_days == 7 and p.context.known_elsewhere_priority == 40
    assert p.context.surface_priority == {"private-message": 5}
    for bad, why in (
        ({"context": {"self_upload_priority": 10}}, "self_upload_priority"),
        ({"context": {"known_elsewhere": 1}}, "unknown setting"),
        ({"context": {"surface_priority": {"story": 1}}}, "surface_priority"),
        ({"context": {"strike_priority": 1000}}, "strike_priority"),
    ):
        with pytest.raises(policy_mod.PolicyError, match=why):
            policy_mod.parse(bad)
    assert parse_weights({}) == policy_mod.Policy().context


def test_upload_context_is_validated() -> None:
    ctx = parse(
        {"ref": "acct-1", "identifiers": [identifier("email", "Mallory+x@Example.net")]},
        {"account_age_days": 3, "strikes": 1, "open_reports": 0, "self_upload": False,
         "surface": "private-message"},
    )  # fmt: skip
    assert ctx.uploader_ref == "acct-1" and ctx.identifiers[0][0] == "email"
    assert UploadContext.from_json(ctx.to_json()) == ctx
    assert "identifiers" in ctx.for_reviewer() and ctx.for_reviewer()["identifiers"] == ["email"]
    for uploader, context in (
        ({"ref": "a b"}, None),
        ({"ref": "a", "identifiers": [{"kind": "email", "digest": "mallory@example.net"}]}, None),
        ({"ref": "a", "identifiers": [identifier("phone", "+441234567890")] * 5}, None),
        ({"name": "x"}, None),
        (None, {"account_age_days": -1}),
        (None, {"self_upload": "yes"}),
        (None, {"surface": "story"}),
        (None, {"ip": "1.2.3.4"}),
    ):
        with pytest.raises(ContextError):
            parse(uploader, context)


def test_reviewers_see_context_and_signals_but_no_identifier() -> None:
    from types import SimpleNamespace

    from blindmatch.node.console.context_view import context_rows

    ctx = parse(
        {"ref": "acct-1", "identifiers": [identifier("email", "mallory@example.net")]},
        {"account_age_days": 3, "self_upload": True, "surface": "private-message"},
    )
    rows = context_rows(
        SimpleNamespace(
            context=ctx.for_reviewer(),
            signals={"known_elsewhere": True, "recidivism": 2, "fired": ["self-upload"]},
        )
    )
    html = " ".join(" ".join(r) for r in rows)
    assert "acct-1" in html and "3 day(s) old" in html and "self-upload" in html
    assert "known elsewhere for this picture" in html and "2 earlier upload(s)" in html
    digest = ctx.identifiers[0][1].hex()
    assert "mallory" not in html and digest not in html
    assert context_rows(SimpleNamespace(context={}, signals={})) == []
