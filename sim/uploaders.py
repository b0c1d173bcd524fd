"""Uploader populations, context signals and repeat-uploader signals across services.

Given the run's confirmed matches, this replays the platforms' decisions three times on the same
draws, so the differences are the signals' and nothing else:

* **match only**: the policy sees the match (band, holder) and nothing about the uploader;
* **with context**: the node's context signals (specs: node policy ``[context]``): account age,
  earlier strikes of the same uploader reference on this platform, open reports, a declared
  self-upload; they move review priority and a declared self-upload is never auto-actioned;
* **with context + cross-service**: also "known elsewhere for this picture"
  (specs/uploaders.md): the uploader was actioned by a person at another platform for the same
  picture, published after one feed period, withdrawn when an appeal there is upheld.

Populations (``[uploaders]`` in a scenario): a share of the circulating pictures belongs to a
few **repeat abusers**, one identity each across every platform, who upload them again and
again (new throwaway accounts, reported more often); **one-off** uploaders reshare once; a
share of matched uploads are the pictured person's own **consensual self-uploads** (taking one
down is a wrongful takedown), most declared as such; harmless uploads come from ordinary
accounts. Each platform has limited reviewers (a priority queue), so priority is what decides
time to takedown; reviewers recognise a consensual self-upload far more often when the
platform flags it. Pure numpy and a heap: no protocol crypto here (the tag computation is
exact and costs nothing the model needs).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .workload import EDITED, NCII, ORIGINAL, Workload

ABUSER, ONE_OFF, SELF, ORDINARY = 0, 1, 2, 3
POPULATIONS = ("repeat abuser", "one-off", "consensual self-upload", "ordinary (harmless)")
VARIANTS = ("match only", "with context", "with context + cross-service")


@dataclass(frozen=True)
class Weights:
    """Priority weights of the variants: the node policy's defaults (its ``[review]`` band
    priorities and its ``[context]`` weights)."""

    base: int = 50
    band: tuple[tuple[int, int], ...] = ((8, 30), (16, 20), (31, 0))
    new_account: int = 10  # account younger than new_account_days
    strike: int = 15  # per earlier actioned case of this uploader on this platform, up to 3
    report: int = 15  # open reports against the account or post
    self_declared: int = -45
    known_elsewhere: int = 30


def _band_priority(w: Weights, band: int) -> int:
    return next((v for b, v in w.band if band <= b), 0)


def assign(s: Any, work: Workload, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per upload: population, uploader id, account age (days), open report, declared self."""
    u = s.uploaders
    n = len(work.up_time)
    ncii = work.up_kind <= EDITED
    pop = np.full(n, ORDINARY, dtype=np.int8)
    uploader = np.arange(n, dtype=np.int64) + 1_000_000  # one-off ids by default
    # Pictures owned by an abuser: content id -> abuser id.
    contents = np.unique(work.up_content[ncii])
    owned = contents[rng.uniform(size=len(contents)) < u.abuser_contents]
    owner = dict(zip(owned.tolist(), rng.integers(0, u.abusers, len(owned)).tolist(), strict=True))
    r = rng.uniform(size=n)
    for i in np.flatnonzero(ncii).tolist():
        c = int(work.up_content[i])
        if r[i] < u.self_share:
            pop[i] = SELF
        elif c in owner and r[i] < u.self_share + (1 - u.self_share) * u.abuser_upload_share:
            pop[i] = ABUSER
            uploader[i] = owner[c]
        else:
            pop[i] = ONE_OFF
    age_mean = np.array([u.abuser_account_days, 300.0, 900.0, 600.0])
    age = rng.exponential(age_mean[pop])
    report_p = np.array([u.report_rate_abuser, u.report_rate_one_off, 0.01, 0.01])
    reported = rng.uniform(size=n) < report_p[pop]
    declared = np.where(
        pop == SELF,
        rng.uniform(size=n) < u.self_declared,
        (pop == ABUSER) & (rng.uniform(size=n) < u.false_self_claim),
    )
    return {
        "pop": pop,
        "uploader": uploader,
        "age": age,
        "reported": reported,
        "declared": declared,
    }


def _first_matches(matches: np.ndarray) -> dict[int, tuple[int, int, int]]:
    """upload -> (item, band, time ms) of its earliest confirmed match."""
    out: dict[int, tuple[int, int, int]] = {}
    if len(matches):
        for up, item, band, t in matches[np.lexsort((matches[:, 1], matches[:, 3]))].tolist():
            out.setdefault(int(up), (int(item), int(band), int(t)))
    return out


def _replay(
    s: Any,
    work: Workload,
    first: dict[int, tuple[int, int, int]],
    who: dict[str, np.ndarray],
    harmful: np.ndarray,
    trusted: np.ndarray,
    variant: int,
    seed: np.random.SeedSequence,
) -> dict[str, Any]:
    """One variant's decisions, event by event. Returns per-upload outcomes and counters."""
    u, p = s.uploaders, s.policy
    w = Weights()
    rng = np.random.default_rng(seed)  # same seed per variant: same reviewer dice
    # dice drawn per upload up front, so every variant sees the same luck for the same upload
    n = len(work.up_time)
    dice_review, dice_dispute, dice_delay = rng.uniform(size=(3, n))
    context, cross = variant >= 1, variant >= 2
    service_ms = 3_600_000.0 / u.reviews_per_hour
    feed_ms = s.network.replication_s * 1000 + 2 * s.network.latency_ms
    events: list[tuple[float, int, int, tuple]] = []
    seq = 0

    def push(t: float, order: int, payload: tuple) -> None:
        nonlocal seq
        heapq.heappush(events, (t, order, seq, payload))
        seq += 1

    for up, (item, band, found_at) in first.items():
        push(float(found_at), 2, ("match", up, item, band))
    queues: dict[int, list] = defaultdict(list)
    busy: dict[int, bool] = defaultdict(bool)
    strikes: dict[tuple[int, int], int] = defaultdict(int)  # (node, uploader) -> actions
    # (uploader, content) -> {publishing node: (visible from ms, withdrawn from ms)}
    published: dict[tuple[int, int], dict[int, list[float]]] = defaultdict(dict)
    action: dict[int, dict[str, Any]] = {}
    lookups = hits = hits_self = hits_abuser = 0
    publications = withdrawals = 0

    def known_elsewhere(up: int, t: float) -> bool:
        key = (int(who["uploader"][up]), int(work.up_content[up]))
        here = int(work.up_node[up])
        return any(node != here and vis <= t < gone for node, (vis, gone) in published[key].items())

    def act(up: int, t: float, auto: bool) -> None:
        nonlocal publications
        node = int(work.up_node[up])
        action[up] = {"time": t, "auto": auto, "reversed": None}
        strikes[(node, int(who["uploader"][up]))] += 1
        if not harmful[up] and dice_dispute[up] < p.dispute_prob:
            push(t + p.dispute_hours * 3.6e6 * (0.5 + dice_delay[up]), 0, ("appeal", up))
        if cross and not auto and who["pop"][up] != ORDINARY:
            key = (int(who["uploader"][up]), int(work.up_content[up]))
            published[key].setdefault(node, [t + feed_ms, np.inf])
            publications += 1

    def start_review(node: int, t: float) -> None:
        if busy[node] or not queues[node]:
            return
        _, _, up = heapq.heappop(queues[node])
        busy[node] = True
        push(t + service_ms, 1, ("reviewed", node, up))

    while events:
        t, _, _, ev = heapq.heappop(events)
        if ev[0] == "match":
            _, up, item, band = ev
            node = int(work.up_node[up])
            declared = bool(who["declared"][up]) and context
            auto = band <= p.auto_max_band and bool(trusted[work.item_holder[item]])
            if auto and not declared:  # context never auto-actions; a self-upload never is
                act(up, t, True)
                continue
            prio = w.base + _band_priority(w, band)
            if context:
                prio += w.new_account * (who["age"][up] < u.new_account_days)
                prio += w.strike * min(3, strikes[(node, int(who["uploader"][up]))])
                prio += w.report * bool(who["reported"][up])
                prio += w.self_declared * declared
            if cross and who["pop"][up] != ORDINARY:
                lookups += 1
                if known_elsewhere(up, t):
                    hits += 1
                    hits_self += int(who["pop"][up] == SELF)
                    hits_abuser += int(who["pop"][up] == ABUSER)
                    prio += w.known_elsewhere
            heapq.heappush(queues[node], (-prio, t, up))
            start_review(node, t)
        elif ev[0] == "reviewed":
            _, node, up = ev
            busy[node] = False
            if harmful[up]:
                takedown = dice_review[up] >= p.reviewer_error
            elif who["pop"][up] == SELF:
                # the reviewer sees an intimate picture matching a protected one; whether they
                # see that it is the person's own consensual post depends on the flag
                seen = (
                    u.reviewer_self_detect_flagged
                    if (context and who["declared"][up])
                    else u.reviewer_self_detect
                )
                takedown = dice_review[up] >= seen
            else:
                takedown = dice_review[up] < p.reviewer_error
            if takedown:
                act(up, t, False)
            start_review(node, t)
        elif ev[0] == "appeal":
            _, up = ev
            a = action[up]
            a["reversed"] = t
            node = int(work.up_node[up])
            strikes[(node, int(who["uploader"][up]))] -= 1
            key = (int(who["uploader"][up]), int(work.up_content[up]))
            if node in published[key] and published[key][node][1] == np.inf:
                published[key][node][1] = t + feed_ms  # withdrawn, seen after one pull
                withdrawals += 1
    return {
        "action": action,
        "cross": {
            "lookups": lookups,
            "known_elsewhere": hits,
            "known_elsewhere_repeat_abusers": hits_abuser,
            "known_elsewhere_self_uploads": hits_self,
            "publications": publications,
            "withdrawn_after_upheld_appeal": withdrawals,
        },
    }


def _hours(v: list[float]) -> dict[str, float | None]:
    if not v:
        return {"p50": None, "p90": None}
    a = np.array(v)
    return {"p50": round(float(np.median(a)), 2), "p90": round(float(np.percentile(a, 90)), 2)}


def evaluate(s: Any, work: Workload, matches: np.ndarray, trusted: np.ndarray) -> dict[str, Any]:
    seq = np.random.SeedSequence(s.seed, spawn_key=(18,))
    pop_seed, decide_seed = seq.spawn(2)
    who = assign(s, work, np.random.default_rng(pop_seed))
    first = _first_matches(matches)
    ups = np.array(sorted(first), dtype=np.int64)
    items = np.array([first[int(x)][0] for x in ups], dtype=np.int64)
    n = len(work.up_time)
    true_match = np.zeros(n, dtype=bool)
    if len(ups):
        true_match[ups] = (
            (work.item_kind[items] == NCII)
            & (work.item_content[items] == work.up_content[ups])
            & np.isin(work.up_kind[ups], (ORIGINAL, EDITED))
        )
    # Harmful: a true match that is not the person's own consensual upload.
    harmful = true_match & (who["pop"] != SELF)
    matched_by_pop = {
        POPULATIONS[k]: int((who["pop"][ups] == k).sum()) if len(ups) else 0 for k in range(4)
    }
    out: dict[str, Any] = {
        "matched_uploads_by_population": matched_by_pop,
        "repeat_abusers": s.uploaders.abusers,
        "reviews_per_hour_per_platform": s.uploaders.reviews_per_hour,
        "variants": {},
    }
    for v, name in enumerate(VARIANTS):
        r = _replay(s, work, first, who, harmful, trusted, v, decide_seed)
        acted = [up for up, a in r["action"].items()]
        good = [up for up in acted if harmful[up]]
        wrong = [up for up in acted if not harmful[up]]
        ttd = [(r["action"][up]["time"] / 1000 - work.up_time[up]) / 3600 for up in good]
        ttd_abuser = [
            (r["action"][up]["time"] / 1000 - work.up_time[up]) / 3600
            for up in good
            if who["pop"][up] == ABUSER
        ]
        n_harmful = int(harmful[ups].sum()) if len(ups) else 0
        standing = [up for up in wrong if r["action"][up]["reversed"] is None]
        out["variants"][name] = {
            "actioned": len(acted),
            "auto_actioned": sum(1 for a in r["action"].values() if a["auto"]),
            "precision": round(len(good) / len(acted), 4) if acted else None,
            "harmful_taken_down": round(len(good) / n_harmful, 4) if n_harmful else None,
            "wrongful_takedowns": len(wrong),
            "wrongful_self_uploads": sum(1 for up in wrong if who["pop"][up] == SELF),
            "wrongful_harmless": sum(1 for up in wrong if who["pop"][up] != SELF),
            "wrongful_still_standing": len(standing),
            "hours_to_takedown": _hours(ttd),
            "hours_to_takedown_repeat_abusers": _hours(ttd_abuser),
            **({"cross_service": r["cross"]} if v == 2 else {}),
        }
    out["curious_member"] = curious_member(s)
    return out


def curious_member(s: Any) -> dict[str, Any]:
    """What a curious reader can test with its budgets (specs/uploaders.md section 9)."""
    from blindmatch.protocol import uploaders as up

    per_picture = up.DEFAULT_BUDGET["uploader_evaluations_per_picture_day"]
    per_day = up.DEFAULT_BUDGET["uploader_evaluations_per_day"]
    dictionary = s.uploaders.curious_dictionary
    return {
        "guesses_per_picture_per_day": per_picture,
        "guesses_per_day_all_pictures": per_day,
        "dictionary": dictionary,
        "days_to_test_dictionary_on_one_picture": round(dictionary / per_picture, 1),
        "share_of_dictionary_testable_in_run_on_one_picture": round(
            min(1.0, per_picture * s.days / dictionary), 8
        ),
        "learns_per_hit": "this identifier was actioned elsewhere for this picture",
        "offline_guessing_possible_for_one_party": False,
    }


# --- report ---------------------------------------------------------------------------------


def plots(res: dict[str, Any], out: Path) -> list[str]:
    u = res.get("uploaders")
    if not u:
        return []
    from .figures import figure_style, save_figure

    figure_style()
    import matplotlib.pyplot as plt

    names = list(u["variants"])
    vs = [u["variants"][n] for n in names]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    x = np.arange(len(names))
    labels = ["match only", "+ context", "+ cross-service"]
    axes[0].bar(x, [v["precision"] or 0 for v in vs])
    axes[0].set_ylim(min(0.9, min(v["precision"] or 0 for v in vs) - 0.02), 1.0)
    axes[0].set_ylabel("precision of takedowns")
    axes[1].bar(x - 0.2, [v["wrongful_self_uploads"] for v in vs], 0.4, label="self-uploads")
    axes[1].bar(x + 0.2, [v["wrongful_harmless"] for v in vs], 0.4, label="harmless")
    axes[1].set_ylabel("wrongful takedowns")
    axes[1].legend(fontsize=7)
    p50 = [v["hours_to_takedown_repeat_abusers"]["p50"] or 0 for v in vs]
    p90 = [v["hours_to_takedown_repeat_abusers"]["p90"] or 0 for v in vs]
    axes[2].bar(x - 0.2, p50, 0.4, label="median")
    axes[2].bar(x + 0.2, p90, 0.4, label="90th percentile")
    axes[2].set_ylabel("hours to takedown (repeat abusers)")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.set_xticks(x, labels, fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out, "uploaders")


def report_lines(res: dict[str, Any], plot_names: list[str]) -> list[str]:
    u = res.get("uploaders")
    if not u:
        return []
    pops = ", ".join(f"{k} {v:,}" for k, v in u["matched_uploads_by_population"].items())
    lines = [
        "",
        "## Uploaders: context and cross-service signals",
        "",
        f"Matched uploads by population: {pops}; {u['repeat_abusers']} repeat-abuser identities; "
        f"{u['reviews_per_hour_per_platform']} reviews per hour per platform. The same matches "
        "and the same reviewer dice are replayed three times: the differences are the signals'. "
        "A wrongful takedown is one of a harmless upload or of the pictured person's own "
        "consensual upload. Context and cross-service signals only move review priority; a "
        "declared self-upload is never auto-actioned.",
        "",
        "| | match only | with context | with context + cross-service |",
        "|---|---|---|---|",
    ]
    vs = list(u["variants"].values())

    def row(label: str, f: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(str(f(v)) for v in vs) + " |")

    row("takedowns (auto)", lambda v: f"{v['actioned']:,} ({v['auto_actioned']:,})")
    row("precision", lambda v: v["precision"])
    row("harmful uploads taken down", lambda v: v["harmful_taken_down"])
    row("wrongful takedowns: self-uploads / harmless", lambda v: (
        f"{v['wrongful_self_uploads']} / {v['wrongful_harmless']}"))  # fmt: skip
    row("wrongful still standing at end", lambda v: v["wrongful_still_standing"])
    row("hours to takedown, median / p90", lambda v: (
        f"{v['hours_to_takedown']['p50']} / {v['hours_to_takedown']['p90']}"))  # fmt: skip
    row("repeat abusers: hours to takedown, median / p90", lambda v: (
        f"{v['hours_to_takedown_repeat_abusers']['p50']} / "
        f"{v['hours_to_takedown_repeat_abusers']['p90']}"))  # fmt: skip
    c = vs[-1].get("cross_service", {})
    cm = u["curious_member"]
    lines += [
        "",
        f"Cross-service: {c.get('lookups', 0):,} lookups after confirmed matches, "
        f'{c.get("known_elsewhere", 0):,} said "known elsewhere for this picture" '
        f"({c.get('known_elsewhere_repeat_abusers', 0):,} repeat abusers, "
        f"{c.get('known_elsewhere_self_uploads', 0):,} self-uploads carried over from a wrongful "
        f"takedown elsewhere); {c.get('publications', 0):,} publications, "
        f"{c.get('withdrawn_after_upheld_appeal', 0):,} withdrawn after an upheld appeal.",
        "",
        f"A curious member learns, per hit, only that one identifier it already had was actioned "
        f"elsewhere for that picture; with the default budgets it can test "
        f"{cm['guesses_per_picture_per_day']} identifiers per picture per day "
        f"({cm['days_to_test_dictionary_on_one_picture']:,} days for a list of "
        f"{cm['dictionary']:,}), and no single party can test one offline "
        "(specs/uploaders.md section 9).",
        "",
    ]
    lines += (
        ["![uploaders](uploaders.png) ([SVG](uploaders.svg))"]
        if "uploaders.png" in plot_names
        else []
    )
    return [*lines, ""]
