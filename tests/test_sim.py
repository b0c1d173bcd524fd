"""The simulator: determinism, exact vs modelled equivalence, scenario validation, resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from blindmatch import sim
from blindmatch.protocol import matching
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.sim import adversary, engine, exchange, workload
from blindmatch.sim.scenario import Budget

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "sims"


def small(**over) -> dict:
    base = {
        "name": "small",
        "seed": 11,
        "days": 0.5,
        "nodes": [
            {"role": "hub", "count": 2, "bank_size": 1500, "trusted": True},
            {"role": "platform", "count": 3, "bank_size": 100, "uploads_per_day": 160},
        ],
        "workload": {
            "circulating_share": 0.5,
            "original_share": 0.2,
            "edited_share": 0.4,
            "submissions_per_day": 40,
            "withdrawals_per_day": 20,
            "query_batch_s": 1800,
        },
        "network": {"loss": 0.05, "outages": [{"node": "hub-1", "start_h": 2, "hours": 3}]},
        "adversaries": {
            "curious_holders": ["hub-0"],
            "poisoner": "hub-1",
            "poison_hashes": 200,
            "feedback": {"platform-0": "withhold"},
        },
        "checkpoint_every": 2,
    }
    base.update(over)
    return base


def results_bytes(out: Path) -> bytes:
    return (out / "results.json").read_bytes()


def test_same_seed_same_results_byte_for_byte(tmp_path: Path) -> None:
    s = sim.parse(small())
    a = sim.run(s, tmp_path / "a")
    b = sim.run(s, tmp_path / "b")
    assert results_bytes(tmp_path / "a") == results_bytes(tmp_path / "b")
    r = a.results
    assert r["matching"]["true_matches"] > 0
    assert r["recall"][0]["uploads"] == "original" and r["recall"][0]["protocol_recall"] == 1.0
    assert (tmp_path / "a" / "report.md").read_text().startswith("# Simulation: small")
    assert (tmp_path / "a" / "recall.png").exists()
    assert b.timing["simulated_events"] == r["matching"]["simulated_events"]
    other = sim.run(sim.parse(small(seed=12, days=0.2)), None)
    assert other.results["matching"] != r["matching"]


def test_protocol_recall_equals_plaintext_pdq_on_exact_reuploads_and_follows_edits() -> None:
    r = sim.run(sim.parse(small(days=1.0)), None).results
    rows = {x["uploads"]: x for x in r["recall"]}
    # the protocol may miss a pair plaintext PDQ would match (LSH), never the reverse
    for x in rows.values():
        if x["catchable"]:
            assert x["protocol_recall"] <= x["plaintext_pdq_recall"] + 1e-9
    assert rows["edited (all)"]["plaintext_pdq_recall"] < 1.0  # crops etc. escape PDQ
    assert r["matching"]["false_matches_by_upload_kind"]["unique"] == 0


def test_exact_and_modelled_make_the_same_matches_and_decisions() -> None:
    data = small(
        days=0.1,
        nodes=[
            {"role": "hub", "count": 2, "bank_size": 150, "trusted": True},
            {"role": "platform", "count": 2, "bank_size": 20, "uploads_per_day": 110},
        ],
        adversaries={"curious_holders": ["hub-0"]},
    )
    data["workload"]["withdrawals_per_day"] = 100
    exact = sim.run(sim.parse({**data, "mode": "exact"}), None).results
    modelled = sim.run(sim.parse({**data, "mode": "modelled"}), None).results
    e = exact.pop("exact_vs_modelled")
    assert e["windows_disagreeing"] == 0, e["disagreements"]
    assert e["matches"] > 0 and e["candidates"] >= e["matches"]
    # the real code's rounds give the answers the model charges
    assert e["threshold_answers"] == e["threshold_answers_modelled"] > 0
    assert e["same_answers"] == exact["matching"]["same_answers"] > 0
    exact["mode"] = modelled["mode"]
    # The provenance names each run's own (resolved) scenario, which differs in its mode.
    assert exact.pop("provenance")["scenario"]["mode"] == "exact"
    assert modelled.pop("provenance")["scenario"]["mode"] == "modelled"
    assert exact == modelled


def test_all_at_once_charges_one_answer_per_table_hit_and_rounds_one_per_item() -> None:
    """Spec 7.3/7.4/8.5: each table that hit a pair is its own candidate. Asked all at once,
    each gets a full answer, so a true match costs as many answers (and decisions) as tables it
    hit; asked in rounds (the node's way), its other candidates are answered ``same`` once the
    first confirmed it, and the same matches are found."""
    costs = exchange.calibrated_costs()
    runs = {
        flow: sim.run(sim.parse(small(days=0.1, threshold_flow=flow)), None).results
        for flow in ("at-once", "rounds")
    }
    once, rounds = runs["at-once"]["matching"], runs["rounds"]["matching"]
    assert once["threshold_answers"] == once["threshold_candidates"] > once["candidates"] > 0
    assert once["same_answers"] == 0
    assert runs["at-once"]["cost"]["cpu_s_by_step"]["decide"] == pytest.approx(
        once["threshold_answers"] * costs["decide"], rel=1e-3
    )
    assert rounds["threshold_candidates"] == once["threshold_candidates"]
    assert rounds["threshold_answers"] + rounds["same_answers"] == rounds["threshold_candidates"]
    assert rounds["threshold_answers"] < once["threshold_answers"] / 2
    assert rounds["confirmed_matches"] == once["confirmed_matches"] > 0
    assert runs["rounds"]["cost"]["bytes_per_query"] < runs["at-once"]["cost"]["bytes_per_query"]
    assert rounds["threshold_round_trips"] > once["threshold_round_trips"]


@pytest.mark.parametrize("flow", ["rounds", "at-once"])
def test_a_near_copy_takes_one_answer_in_rounds_one_per_table_hit_at_once(flow: str) -> None:
    """The real code (exact mode's exchange): a near copy of one banked item hits it in several
    tables; in rounds the holder answers its first hit in full and the others ``same``."""
    rng = np.random.default_rng(7)
    items = workload.synthetic_hashes(rng, 30)
    holder = exchange.ExactHolder.build(PDQ_LSH_1, np.arange(30), items)
    query, floats = workload.edit(rng, items[:1], np.array([4]))
    owner, table, key = exchange.fast_probes(PDQ_LSH_1, query, floats)
    _, hit, mask = exchange.GlobalIndex.build(PDQ_LSH_1, items).join(owner, table, key)
    assert hit.tolist() == [0]  # the copy's own item only
    tables_hit = int(np.bitwise_count(mask[0]))
    assert tables_hit > 1
    res = exchange.exact_exchange(
        PDQ_LSH_1,
        holder,
        holder.replica(PDQ_LSH_1),
        np.array([0]),
        query,
        floats,
        replicated=lambda i: True,
        active=lambda i, r: True,
        item_hash=lambda i: items[i].tobytes(),
        bands=(8, 16, 31),
        encryptions=matching.EncryptionCache(os.urandom),
        cpu={},
        rounds=flow == "rounds",
    )
    assert res.candidates == [(0, 0)] and [m[:2] for m in res.matches] == [(0, 0)]
    if flow == "rounds":
        assert (res.answers, res.same, res.rounds) == (1, tables_hit - 1, 2)
    else:
        assert (res.answers, res.same, res.rounds) == (tables_hit, 0, 1)


def test_scenario_with_a_bad_field_gets_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[nodes]]\nrole = "hub"\n[network]\nlatncy_ms = 5\n')
    with pytest.raises(sim.ScenarioError, match=r"bad.toml: network: unknown field 'latncy_ms'"):
        sim.load(bad)
    with pytest.raises(
        sim.ScenarioError, match=r"nodes\[0\].count: expected an integer, got 'two'"
    ):
        sim.parse({"name": "x", "nodes": [{"role": "hub", "count": "two"}]})
    with pytest.raises(sim.ScenarioError, match=r"nodes\[0\].role: must be one of"):
        sim.parse({"name": "x", "nodes": [{"role": "hubb"}]})
    with pytest.raises(sim.ScenarioError, match=r"network.loss: must be <= 0.99"):
        sim.parse(small(network={"loss": 1.5}))
    with pytest.raises(sim.ScenarioError, match=r"no node named 'hub-9'"):
        sim.parse(small(adversaries={"curious_holders": ["hub-9"]}))
    with pytest.raises(sim.ScenarioError, match=r"workload.edit_mix.blur: unknown edit"):
        sim.parse(small(workload={"edit_mix": {"blur": 1.0}}))
    from blindmatch.node.cli.main import main

    assert main(["sim", str(bad), "--out", str(tmp_path / "o")]) == 2


def test_resumed_run_equals_uninterrupted(tmp_path: Path) -> None:
    s = sim.parse(small())
    sim.run(s, tmp_path / "whole")
    with pytest.raises(sim.Interrupted):
        sim.run(s, tmp_path / "resumed", stop_after=5)
    assert (tmp_path / "resumed" / engine.CHECKPOINT).exists()
    assert not (tmp_path / "resumed" / "results.json").exists()
    sim.run(s, tmp_path / "resumed", resume=True)
    assert results_bytes(tmp_path / "whole") == results_bytes(tmp_path / "resumed")
    assert not (tmp_path / "resumed" / engine.CHECKPOINT).exists()


def test_checkpoint_of_another_scenario_is_refused(tmp_path: Path) -> None:
    with pytest.raises(sim.Interrupted):
        sim.run(sim.parse(small()), tmp_path, stop_after=1)
    with pytest.raises(ValueError, match="another scenario"):
        sim.run(sim.parse(small(seed=99)), tmp_path, resume=True)


def test_outage_delays_a_holders_answers_until_it_is_back() -> None:
    data = small(network={"outages": [{"node": "hub-0", "start_h": 0, "hours": 6}]})
    s = sim.parse(data)
    ctx = engine.prepare(s)
    st = engine.run_matching(ctx, None, "x")
    cand = np.concatenate(st.cand)
    from_hub0 = ctx.work.item_holder[cand[:, 1]] == 0
    assert from_hub0.any() and (~from_hub0).any()
    assert (cand[from_hub0, 3] >= 6 * 3_600_000).all()  # answered after the outage
    assert (cand[~from_hub0, 3] < 6 * 3_600_000).any()


def test_poisoned_hashes_cause_wrongful_takedowns_that_disputes_reverse() -> None:
    r = sim.run(sim.parse(small(days=2.0)), None).results
    w = r["wrongful_takedowns"]
    assert r["matching"]["false_matches_on_poisoned_hashes"] > 0
    assert w["by_cause"]["poisoned hash"] > 0
    assert w["reversed"] > 0
    assert w["disputes_withheld"] >= 0


def test_modelled_join_finds_exactly_the_shared_buckets() -> None:
    rng = np.random.default_rng(0)
    items = workload.synthetic_hashes(rng, 500)
    index = exchange.GlobalIndex.build(PDQ_LSH_1, items)
    queries, floats = workload.edit(rng, items[:40], np.full(40, 6))
    owner, table, key = exchange.probe_arrays(PDQ_LSH_1, queries, floats)
    q, i, mask = index.join(owner, table, key)
    found = set(zip(q.tolist(), i.tolist(), strict=True))
    assert {(k, k) for k in range(40)} <= found  # distance 6: every copy shares a bucket
    # brute force: same pairs as comparing probe keys with every item's bucket keys
    keys = exchange.bucket_keys(PDQ_LSH_1, items)
    brute = {
        (int(o), int(it))
        for o, t, k in zip(owner, table, key, strict=True)
        for it in np.flatnonzero(keys[:, t] == k)
    }
    assert found == brute
    assert all(m > 0 for m in mask.tolist())


def test_edits_land_at_the_drawn_distance_with_uncertain_bits_flipped() -> None:
    rng = np.random.default_rng(1)
    h = workload.synthetic_hashes(rng, 300)
    d = rng.integers(0, 60, 300)
    e, floats = workload.edit(rng, h, d)
    assert (exchange.distances(e, h) == d).all()
    assert (np.unpackbits(e, axis=1).astype(bool) == (floats > 0)).all()


def test_probing_attack_boundary_walk_recovers_the_hash() -> None:
    rng = np.random.default_rng(2)
    target = rng.integers(0, 2, 256).astype(bool)
    known = np.zeros(256, dtype=bool)
    known[:170] = True
    learned, calls = adversary.boundary_walk(rng, target, known, 31)
    assert learned is not None and (learned == target).all()
    assert calls >= 86
    hashes = workload.synthetic_hashes(rng, 2000)
    few = adversary.probing_attack(PDQ_LSH_1, hashes, Budget(), 1, 365, 31, rng)
    many = adversary.probing_attack(PDQ_LSH_1, hashes, Budget(), 100, 365, 31, rng)
    assert many["days_to_first_hash"] < few["days_to_first_hash"]
    assert many["recovered_exactly"]


def test_example_scenarios_validate() -> None:
    files = sorted(EXAMPLES.glob("*.toml"))
    assert len(files) >= 4
    for f in files:
        s = sim.load(f)
        assert s.description
        assert json.dumps(s.name)


def test_vectorised_probes_are_the_schemes_probes() -> None:
    rng = np.random.default_rng(3)
    h = workload.synthetic_hashes(rng, 120)
    edited, floats = workload.edit(rng, h, rng.integers(0, 40, 120))
    slow = exchange.probe_arrays(PDQ_LSH_1, edited, floats)
    fast = exchange.fast_probes(PDQ_LSH_1, edited, floats)
    assert len(fast[0]) == 120 * PDQ_LSH_1.probe_budget
    as_set = [set(zip(*[x.tolist() for x in arrays], strict=True)) for arrays in (slow, fast)]
    assert as_set[0] == as_set[1]


def test_corpus_hashes_as_the_source() -> None:
    data = small(days=0.2)
    data["workload"]["source"] = "corpus"
    s = sim.parse(data)
    ctx = engine.prepare(s)
    corpus = {h.tobytes() for h in workload.corpus_hashes()}
    ncii = ctx.work.item_hash[ctx.work.item_kind == workload.NCII]
    assert sum(h.tobytes() in corpus for h in ncii) >= min(len(ncii), len(corpus)) // 2
    r = sim.run(s, None).results
    assert r["matching"]["true_matches"] > 0
