"""The simulator's uploader populations and signals: context never auto-actions, declared
self-uploads are never auto-actioned, cross-service hits only for uploaders actioned elsewhere,
and the report carries precision, wrongful takedowns and time to takedown per variant."""

from __future__ import annotations

import numpy as np
import pytest

from blindmatch import sim
from blindmatch.sim import engine, uploaders


def scenario() -> sim.Scenario:
    return sim.parse(
        {
            "name": "uploaders-small",
            "seed": 7,
            "days": 2.0,
            "nodes": [
                {"role": "hub", "count": 1, "bank_size": 800, "trusted": True},
                {"role": "platform", "count": 6, "bank_size": 50, "uploads_per_day": 250},
            ],
            "workload": {"circulating_share": 0.5, "original_share": 0.1, "edited_share": 0.2},
            "policy": {"auto_max_band": 8},
            "uploaders": {
                "abusers": 10,
                "abuser_contents": 0.4,
                "self_share": 0.15,
                "reviews_per_hour": 0.5,
            },
        }
    )


@pytest.fixture(scope="module")
def run() -> tuple[sim.Scenario, engine.Context, np.ndarray]:
    s = scenario()
    ctx = engine.prepare(s)
    st = engine.run_matching(ctx, None, "test")
    return s, ctx, np.concatenate(st.match)


def _replays(s, ctx, match):  # type: ignore[no-untyped-def]
    seq = np.random.SeedSequence(s.seed, spawn_key=(18,))
    pop_seed, decide_seed = seq.spawn(2)
    who = uploaders.assign(s, ctx.work, np.random.default_rng(pop_seed))
    first = uploaders._first_matches(match)
    harmful = np.zeros(len(ctx.work.up_time), dtype=bool)
    for up, (item, _b, _t) in first.items():
        harmful[up] = (
            ctx.work.item_content[item] == ctx.work.up_content[up]
            and who["pop"][up] != uploaders.SELF
        )
    return who, [
        uploaders._replay(s, ctx.work, first, who, harmful, ctx.trusted, v, decide_seed)
        for v in range(3)
    ]


def test_context_never_auto_actions_and_declared_self_uploads_never_are(run) -> None:  # type: ignore[no-untyped-def]
    s, ctx, match = run
    who, (plain, context, cross) = _replays(s, ctx, match)
    auto = [{u for u, a in r["action"].items() if a["auto"]} for r in (plain, context, cross)]
    declared = set(np.flatnonzero(who["declared"]).tolist())
    # Without context the platform auto-actions declared self-uploads like any close match...
    assert auto[0] & declared
    # ...with it, never; and context adds no automatic action the match alone did not justify.
    assert not (auto[1] | auto[2]) & declared
    assert auto[1] <= auto[0] and auto[2] <= auto[0]


def test_signals_cut_wrongful_takedowns_and_hits_come_only_from_repeat_identities(run) -> None:  # type: ignore[no-untyped-def]
    s, ctx, match = run
    res = uploaders.evaluate(s, ctx.work, match, ctx.trusted)
    v = res["variants"]
    plain, context, cross = (v[name] for name in uploaders.VARIANTS)
    assert context["wrongful_self_uploads"] < plain["wrongful_self_uploads"]
    assert context["precision"] > plain["precision"]
    c = cross["cross_service"]
    assert c["lookups"] > 0 and c["publications"] > 0
    # one-off uploaders have one upload each: "known elsewhere" can only be a repeat identity
    assert (
        c["known_elsewhere"]
        == c["known_elsewhere_repeat_abusers"] + (c["known_elsewhere_self_uploads"])
    )
    for name in uploaders.VARIANTS:
        assert set(v[name]["hours_to_takedown"]) == {"p50", "p90"}
    assert uploaders.evaluate(s, ctx.work, match, ctx.trusted) == res  # same seed, same figures


def test_the_report_has_the_table_and_figure(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s, ctx, match = run
    res = {"uploaders": uploaders.evaluate(s, ctx.work, match, ctx.trusted)}
    made = uploaders.plots(res, tmp_path)
    text = "\n".join(uploaders.report_lines(res, made))
    assert (tmp_path / "uploaders.png").stat().st_size > 0
    assert "| precision |" in text and "known elsewhere" in text
    assert "wrongful takedowns" in text and "hours to takedown" in text


def test_scenario_without_uploaders_has_no_section() -> None:
    assert scenario().uploaders is not None
    with pytest.raises(sim.ScenarioError, match="reviews_per_hour"):
        sim.parse({**_raw(), "uploaders": {"reviews_per_hour": -1}})


def _raw() -> dict:
    return {
        "name": "x",
        "nodes": [{"role": "hub", "bank_size": 10}, {"role": "platform", "uploads_per_day": 1}],
    }
