"""Simulator outputs a paper can use: provenance in results.json, CSV tables, print figures,
seeds with 95% intervals, sweeps that give the same numbers on local processes and on a Dask
cluster, and committed example reports that a test finds stale."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from blindmatch import sim
from blindmatch.sim import examples, provenance, sweep

ROOT = Path(__file__).resolve().parent.parent

TINY = """
name = "tiny"
seed = 3
days = 0.5
[[nodes]]
role = "hub"
count = 1
bank_size = 2000
trusted = true
[[nodes]]
role = "platform"
count = 3
bank_size = 100
uploads_per_day = 200
[workload]
circulating_share = 0.3
edited_share = 0.2
query_batch_s = 3600
[adversaries]
curious_holders = ["hub-0"]
"""

SWEEP = """
name = "tiny-sweep"
scenario = "tiny.toml"
seeds = 2
metrics = ["leakage.hub-0.bits_per_threshold_query", "recall[edited (all)].protocol_recall"]
[grid]
"workload.edited_share" = [0.1, 0.3]
"nodes[0].bank_size" = [1000, 2000]
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    (tmp_path / "sweep.toml").write_text(SWEEP)
    return path


def test_a_run_records_its_scenario_code_and_environment_and_writes_tables_and_figures(
    tiny: Path, tmp_path: Path
) -> None:
    from PIL import Image

    out = tmp_path / "out"
    s = sim.load(tiny)
    sim.run(s, out)
    res = json.loads((out / "results.json").read_text())
    p = res["provenance"]
    assert p["scenario"] == provenance.resolved(s)
    assert p["scenario"]["network"]["latency_ms"] == 80.0  # defaults are filled in
    assert p["inputs_sha256"] == provenance.inputs_sha256(s)
    assert p["code"]["package_version"] and len(p["code"]["source_sha256"]) == 64
    assert p["environment"]["python"] and p["environment"]["libsodium"]
    assert set(res["cost"]["charged_cpu_s_per_step"]) >= {"blind", "evaluate", "verify"}
    with (out / "recall.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["uploads"] for r in rows] == [r["uploads"] for r in res["recall"]]
    metrics = dict(csv.reader((out / "metrics.csv").open()))
    assert float(metrics["matching.confirmed_matches"]) == res["matching"]["confirmed_matches"]
    assert (out / "leakage.csv").exists()
    for stem in ("recall", "takedowns"):
        assert (out / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
        with Image.open(out / f"{stem}.png") as im:
            assert round(im.info["dpi"][0]) == 300
    report = (out / "report.md").read_text()
    assert "(n=" in report or "n=" in (out / "recall.svg").read_text()
    assert "## Provenance" in report


def test_the_staleness_key_follows_the_scenario_and_only_it(tiny: Path) -> None:
    s = sim.load(tiny)
    same = sim.parse(sim.scenario.load_data(tiny))
    other = sim.parse({**sim.scenario.load_data(tiny), "seed": 4})
    assert provenance.inputs_sha256(s) == provenance.inputs_sha256(same)
    assert provenance.inputs_sha256(s) != provenance.inputs_sha256(other)


def test_t_interval_quantiles() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 80):
        assert sweep.t975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-3)
    ci = sweep.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert ci["n"] == 5 and ci["mean"] == 3.0
    half = 2.776 * (2.5**0.5) / 5**0.5
    assert ci["ci95_low"] == pytest.approx(3 - half) and ci["ci95_high"] == pytest.approx(3 + half)
    assert sweep.mean_ci([2.0])["ci95_low"] is None


def test_sweep_file_errors_name_the_field(tiny: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('scenario = "tiny.toml"\n[grid]\n"nodes[7].count" = [1]\n')
    with pytest.raises(sweep.SweepError, match=r"nodes\[7\]\.count"):
        sweep.load_sweep(bad)
    bad.write_text('scenario = "tiny.toml"\n[grid]\n"workload.edited_share" = [2.0]\n')
    with pytest.raises(sweep.SweepError, match=r"workload\.edited_share: must be <= 1"):
        sweep.load_sweep(bad)
    bad.write_text('scenario = "tiny.toml"\nseed = 3\n')
    with pytest.raises(sweep.SweepError, match="unknown field 'seed'"):
        sweep.load_sweep(bad)


def test_sweep_on_processes_and_on_a_local_dask_cluster_gives_identical_numbers(
    tiny: Path, tmp_path: Path
) -> None:
    pytest.importorskip("dask.distributed", reason="the cluster extra is not installed")
    plan = sweep.load_sweep(tmp_path / "sweep.toml")
    assert len(plan.points()) == 4
    local = sweep.run_sweep(plan, tmp_path / "local", engine="processes", workers=2)
    dask = sweep.run_sweep(plan, tmp_path / "dask", engine="dask", workers=2)
    for name in ("runs.csv", "summary.csv"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()
    assert local["runs"] == dask["runs"] and dask["engine"] == "dask"
    with (tmp_path / "local" / "summary.csv").open() as f:
        rows = [
            r for r in csv.DictReader(f) if r["metric"] == "leakage.hub-0.bits_per_threshold_query"
        ]
    assert len(rows) == 4 and all(r["n"] == "2" for r in rows)
    assert all(float(r["ci95_low"]) <= float(r["mean"]) <= float(r["ci95_high"]) for r in rows)
    for stem in ("leakage.hub-0.bits_per_threshold_query", "recall_edited_all_.protocol_recall"):
        assert (tmp_path / "local" / f"{stem}.svg").exists()
        assert (tmp_path / "local" / f"{stem}.png").exists()
    # Each run is the run `blindmatch sim` makes of that point and seed.
    first = sweep.jobs(plan)[0]
    alone = sweep.run_job(first.data, plan.base_source)
    with (tmp_path / "local" / "runs.csv").open() as f:
        row = next(r for r in csv.DictReader(f) if r["metric"] == "matching.confirmed_matches")
    assert float(row["value"]) == alone["matching"]["confirmed_matches"]


def test_seeds_on_the_command_line(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "seeds"
    r = subprocess.run(
        [sys.executable, "-m", "blindmatch", "sim", str(tiny), "--seeds", "2", "--out", str(out),
         "--engine", "serial", "--quiet"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["0000-seed3", "0001-seed4"]
    assert (out / "runs" / "0001-seed4" / "report.md").exists()
    with (out / "summary.csv").open() as f:
        assert {row["n"] for row in csv.DictReader(f)} <= {"1", "2"}
    r = subprocess.run(
        [sys.executable, "-m", "blindmatch", "sim", "sweep", str(tmp_path / "nope.toml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "nope.toml" in r.stderr


def test_committed_example_reports_are_current() -> None:
    """Fails when an example scenario, the simulator, its data, the CPU costs it charges or the
    LSH schemes changed after the committed report was made: run `blindmatch sim examples`."""
    assert examples.main(["--check"]) == 0, "regenerate with: blindmatch sim examples"


def test_a_changed_scenario_makes_its_report_stale(tmp_path: Path) -> None:
    root = tmp_path / "examples" / "sims"
    (root / "reports").mkdir(parents=True)
    shutil.copy(ROOT / "examples/sims/exact-small.toml", root)
    shutil.copytree(ROOT / "examples/sims/reports/exact-small", root / "reports/exact-small")
    assert examples.main(["--check"], root=root) == 0
    text = (root / "exact-small.toml").read_text()
    (root / "exact-small.toml").write_text(text.replace("days = 0.25", "days = 0.3"))
    assert examples.main(["--check"], root=root) == 1
    shutil.copy(ROOT / "examples/sims/exact-small.toml", root)
    (root / "reports/exact-small/recall.csv").unlink()
    assert examples.main(["--check"], root=root) == 1


def test_the_staleness_key_covers_the_modules_a_run_uses() -> None:
    plain = sim.load(ROOT / "examples/sims/curious-week.toml")
    with_uploaders = sim.load(ROOT / "examples/sims/repeat-uploaders.toml")
    names = {p.name for p in provenance._model_files(plain)}
    assert {"engine.py", "workload.py", "exchange.py", "policy.py", "pdq_model.json"} <= names
    assert not names & provenance.PRESENTATION and "uploaders.py" not in names
    assert "uploaders.py" in {p.name for p in provenance._model_files(with_uploaders)}


ONE_RUN = """
import json
from blindmatch.sim import sweep
s = sweep.load_sweep("examples/sims/sweeps/curious-leakage.toml")
data = s.scenario_data({"workload.edited_share": 0.3, "nodes[0].bank_size": 5000}, 0)
r = sweep.run_job(data, s.base_source)
r.pop("provenance")
print(json.dumps(r, sort_keys=True))
"""


def test_numbers_do_not_depend_on_the_blas_thread_count() -> None:
    """This point's run differed in its spec bound between 1 and 2 BLAS threads (a float32
    product's rounding) until the workload drew with one thread whatever the machine."""
    import os

    outputs = []
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        r = subprocess.run(
            [sys.executable, "-c", ONE_RUN], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=600, check=True,
        )  # fmt: skip
        outputs.append(r.stdout)
    assert outputs[0] == outputs[1]
