"""The policy file: validated at load with clear errors; verdicts follow it."""

from __future__ import annotations

from pathlib import Path

import pytest

from blindmatch.node.cases import policy as p

GOOD = """
[auto_action]
max_band = 8
provenance = ["survivor-submitted"]
trusted_sources = ["hub"]
min_confirmations = 2

[review]
band_priority = { 8 = 30, 16 = 20, 31 = 0 }

[allowlist]
banks = ["allowlist", "brand-safe"]

[quarantine]
window_s = 600
min_matches = 10
factor = 5
"""


def facts(**over) -> p.MatchFacts:  # type: ignore[no-untyped-def]
    base = dict(holder="hub", band=8, provenance="survivor-submitted", confirmations=2,
                disputes=0, withdrawn=False, allowlisted=False, matches_this_window=1,
                baseline_per_window=0.0)  # fmt: skip
    base.update(over)
    return p.MatchFacts(**base)


def test_good_policy_loads_and_decides(tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(GOOD)
    pol = p.load(f)
    assert pol.auto_action.enabled and pol.allowlist_banks == ("allowlist", "brand-safe")
    assert p.decide(pol, facts()).action == "auto-action"
    assert p.decide(pol, facts(band=16)).action == "review"
    assert p.decide(pol, facts(confirmations=1)).action == "review"
    assert p.decide(pol, facts(disputes=1)).action == "review"
    assert p.decide(pol, facts(holder="elsewhere")).action == "review"
    assert p.decide(pol, facts(allowlisted=True)).action == "suppress"
    assert p.decide(pol, facts(withdrawn=True)).action == "suppress"
    assert (
        p.decide(pol, facts(matches_this_window=50, baseline_per_window=2)).action == "quarantine"
    )
    close = p.decide(pol, facts(band=8, confirmations=0)).priority
    far = p.decide(pol, facts(band=31, confirmations=0)).priority
    assert close > far


def test_defaults_never_act_without_a_person() -> None:
    assert p.decide(p.Policy(), facts()).action == "review"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[auto_action]\nmax_band = 99\n", "max_band"),
        ('[auto_action]\nprovenance = ["anyone"]\n', "unknown value"),
        ("[review]\nband_priority = { x = 1 }\n", "band_priority"),
        ("[quarantine]\nfactor = 0.5\n", "factor"),
        ("[quarantine]\nwindow = 5\n", "unknown setting"),
        ("[surprise]\n", "unknown setting"),
        ("[auto_action\n", "policy.toml"),
    ],
)
def test_bad_policy_is_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(text)
    with pytest.raises(p.PolicyError, match=message):
        p.load(f)
