"""The example Prometheus alert rules and Grafana dashboard (examples/monitoring/) name only
metrics a node exports, parse as PromQL (with promtool, when installed), and the stuck-job
alert fires on a stuck job."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from blindmatch.node.metrics import METRICS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "monitoring"
RULES = EXAMPLES / "alerts.yml"
DASHBOARD = EXAMPLES / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
_METRIC = re.compile(r"\bblindmatch_[a-z0-9_]+")


def exported_series() -> set[str]:
    names = set()
    for name, (kind, _, _) in METRICS.items():
        if kind == "histogram":
            names |= {f"blindmatch_{name}_{s}" for s in ("bucket", "count", "sum")}
        else:
            names.add(f"blindmatch_{name}")
    return names


def rule_exprs() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in doc["panels"] for t in panel["targets"]]


def test_every_expression_names_exported_metrics() -> None:
    exported = exported_series()
    exprs = rule_exprs() + dashboard_exprs()
    assert len(exprs) > 20
    for expr in exprs:
        used = set(_METRIC.findall(expr))
        assert used, expr
        assert used <= exported, (expr, used - exported)
    # and every metric an operator alerts on has a rule
    alerted = set(_METRIC.findall(" ".join(rule_exprs())))
    for name in ("queue_oldest_age_seconds", "queue_depth", "peer_request_seconds_bucket",
                 "feed_lag_entries", "roster_expires_in_seconds", "budget_refusals_total",
                 "match_task_retries_total", "voprf_key_age_seconds"):  # fmt: skip
        assert f"blindmatch_{name}" in alerted, name


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: prometheus)")
def test_rules_and_dashboard_queries_pass_promtool(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # The dashboard's queries as recording rules, so promtool parses each one.
    records = [
        {"record": f"dashboard:q{i}", "expr": expr.replace("$instance", ".*")}
        for i, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    done = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: prometheus)")
def test_stuck_job_alert_fires_and_a_moving_queue_does_not(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    stuck = 'blindmatch_queue_oldest_age_seconds{instance="a",queue="match-jobs",state="pending"}'
    moving = 'blindmatch_queue_oldest_age_seconds{instance="b",queue="match-jobs",state="pending"}'
    (rule,) = [
        r
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if r["alert"] == "BlindmatchMatchJobStuck"
    ]
    description = rule["annotations"]["description"]
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": stuck, "values": "0+60x30"},  # ages a minute every minute
                    {"series": moving, "values": "5x30"},  # always 5 s: jobs finish
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "BlindmatchMatchJobStuck", "exp_alerts": []},
                    {
                        "eval_time": "20m",
                        "alertname": "BlindmatchMatchJobStuck",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "page",
                                    "instance": "a",
                                    "queue": "match-jobs",
                                    "state": "pending",
                                },
                                "exp_annotations": {
                                    "summary": "a: a match job has waited 20m 0s",
                                    "description": description,
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test))
    done = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
