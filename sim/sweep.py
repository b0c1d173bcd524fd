"""Sweeps: one scenario over a grid of parameter values, each point run with several seeds,
aggregated into means and 95% intervals, written as CSV, SVG/PNG figures and a report.

A sweep file (TOML or JSON)::

    name = "curious-leakage"
    scenario = "../curious-small.toml"        # relative to the sweep file
    seeds = 5                                 # seeds s, s+1, ... from the scenario's seed
    metrics = ["leakage.hub-0.bits_per_threshold_query"]   # names as in metrics.csv
    [grid]
    "workload.edited_share" = [0.05, 0.15, 0.3]            # dotted paths into the scenario
    "nodes[0].bank_size" = [20000, 100000]

Every (point, seed) is an independent, deterministic run, so where it runs does not change its
numbers: ``processes`` spreads runs over local worker processes, ``dask`` over a Dask cluster
(a local one by default, or ``scheduler`` naming a running scheduler, whose workers must have
this package installed). Only the parent process aggregates and writes.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import provenance
from .scenario import ScenarioError, load_data, parse

ENGINES = ("serial", "processes", "dask")

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    # Beyond 30: two terms of the Cornish-Fisher expansion, within 1e-4 of the exact value.
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation and the 95% t-interval of the mean."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "ci95_low": None, "ci95_high": None}
    mean = float(v.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "sd": None, "ci95_low": None, "ci95_high": None}
    sd = float(v.std(ddof=1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci95_low": mean - half, "ci95_high": mean + half}


class SweepError(ValueError):
    """A sweep file that cannot be run; the message says which field and why."""


@dataclass
class Sweep:
    name: str
    base: dict[str, Any]  # the scenario's data as read, before the grid is applied
    base_source: str
    seeds: int = 5
    grid: list[tuple[str, list[Any]]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)

    def points(self) -> list[dict[str, Any]]:
        names = [p for p, _ in self.grid]
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(v for _, v in self.grid))
        ]

    def scenario_data(self, point: dict[str, Any], seed_index: int) -> dict[str, Any]:
        data = copy.deepcopy(self.base)
        for path, value in point.items():
            set_path(data, path, value)
        data["seed"] = int(self.base.get("seed", 1)) + seed_index
        return data


_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)((?:\[\d+\])*)")


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b[2].c`` in nested scenario data; the containers must exist."""
    target: Any = data
    steps: list[str | int] = []
    for part in path.split("."):
        m = _SEGMENT.fullmatch(part)
        if not m:
            raise SweepError(f"grid: {path!r} is not a dotted path like nodes[0].bank_size")
        steps.append(m.group(1))
        steps += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    for step in steps[:-1]:
        try:
            target = target[step] if isinstance(step, int) else target.setdefault(step, {})
        except (IndexError, KeyError, TypeError, AttributeError):
            raise SweepError(f"grid: {path!r}: no {step!r} in the scenario") from None
    last = steps[-1]
    if isinstance(last, int) and not (isinstance(target, list) and last < len(target)):
        raise SweepError(f"grid: {path!r}: index {last} out of range")
    target[last] = value


def load_sweep(path: str | Path) -> Sweep:
    p = Path(path)
    try:
        text = p.read_text()
        raw = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise SweepError(f"{p}: cannot read: {exc}") from None
    known = {"name", "scenario", "seeds", "grid", "metrics", "description"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SweepError(f"{p}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if not isinstance(raw.get("scenario"), str):
        raise SweepError(f"{p}: scenario: the scenario file to sweep, relative to this file")
    seeds = raw.get("seeds", 5)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 10_000:
        raise SweepError(f"{p}: seeds: an integer in 1..10000")
    grid = raw.get("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise SweepError(f"{p}: grid: a table of dotted path = [values, ...]")
    metrics = raw.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise SweepError(f"{p}: metrics: a list of metric names (as in metrics.csv)")
    source = (p.parent / raw["scenario"]).resolve()
    try:
        base = load_data(source)
    except ScenarioError as exc:
        raise SweepError(f"{p}: scenario: {exc}") from None
    sweep = Sweep(
        name=str(raw.get("name", p.stem)),
        base=base,
        base_source=str(source),
        seeds=seeds,
        grid=[(k, list(v)) for k, v in grid.items()],
        metrics=list(metrics),
    )
    for point in sweep.points():  # every point must be a valid scenario before anything runs
        try:
            parse(sweep.scenario_data(point, 0), f"{p} at {point}")
        except (ScenarioError, SweepError) as exc:
            raise SweepError(str(exc)) from None
    return sweep


def single(scenario_path: str | Path, seeds: int, metrics: Sequence[str] = ()) -> Sweep:
    """One scenario over ``seeds`` seeds (``blindmatch sim SCENARIO --seeds N``)."""
    source = Path(scenario_path).resolve()
    base = load_data(source)
    return Sweep(str(base.get("name", source.stem)), base, str(source), seeds, [], list(metrics))


def run_job(data: dict[str, Any], source: str, out: str | None = None) -> dict[str, Any]:
    """One deterministic run; returns its results as plain JSON data. Module-level so that
    worker processes and Dask workers can import it by name."""
    from .report import dumps
    from .run import run

    scenario = parse(data, source)
    result = run(scenario, out, write=out is not None)
    return json.loads(dumps(result.results))


@dataclass
class Job:
    index: int
    point: dict[str, Any]
    seed: int
    data: dict[str, Any]
    out: str | None


def jobs(sweep: Sweep, runs_dir: Path | None = None) -> list[Job]:
    out: list[Job] = []
    for point in sweep.points():
        for k in range(sweep.seeds):
            data = sweep.scenario_data(point, k)
            where = None
            if runs_dir is not None:
                where = str(runs_dir / f"{len(out):04d}-seed{data['seed']}")
            out.append(Job(len(out), point, int(data["seed"]), data, where))
    return out


Progress = Callable[[int, int], None]


def execute(
    sweep: Sweep,
    job_list: list[Job],
    engine: str = "processes",
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Run every job; results in job order whatever the engine."""
    args = [(j.data, sweep.base_source, j.out) for j in job_list]
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(args))

    if engine == "serial":
        results = []
        for a in args:
            results.append(run_job(*a))
            tick()
        return results
    if engine == "processes":
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_job, *a) for a in args]
            results = []
            for f in futures:
                results.append(f.result())
                tick()
            return results
    if engine == "dask":
        return _execute_dask(args, workers, scheduler, tick)
    raise SweepError(f"engine must be one of {', '.join(ENGINES)}")


def _execute_dask(args: list[tuple], workers: int | None, scheduler: str | None, tick) -> list:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise SweepError(
            "the dask engine needs the cluster extra: pip install 'blindmatch[cluster]'"
        ) from exc
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:
        futures = [
            client.submit(run_job, *a, key=f"blindmatch-sim-{i}", pure=False)
            for i, a in enumerate(args)
        ]
        for _ in as_completed(futures):
            tick()
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _param_label(path: str) -> str:
    return path


def summarise(sweep: Sweep, job_list: list[Job], results: list[dict[str, Any]]):
    """Long tables: one row per (run, metric) and one per (point, metric)."""
    from .report import flat_metrics

    params = [p for p, _ in sweep.grid]
    run_rows: list[list[Any]] = []
    by_point: dict[tuple, dict[str, list[float]]] = {}
    names: list[str] = []
    for job, res in zip(job_list, results, strict=True):
        key = tuple(job.point[p] for p in params)
        metrics = by_point.setdefault(key, {})
        for name, value in flat_metrics(res):
            if name not in metrics:
                metrics[name] = []
                if name not in names:
                    names.append(name)
            metrics[name].append(float(value))
            run_rows.append([*key, job.seed, name, value])
    summary_rows = []
    for key, metrics in by_point.items():
        for name in names:
            if name in metrics:
                s = mean_ci(metrics[name])
                summary_rows.append(
                    [*key, name, s["n"], s["mean"], s["sd"], s["ci95_low"], s["ci95_high"]]
                )
    return params, run_rows, summary_rows


def write_outputs(
    sweep: Sweep,
    job_list: list[Job],
    results: list[dict[str, Any]],
    out: Path,
    engine: str,
) -> dict[str, Any]:
    from .report import _csv

    out.mkdir(parents=True, exist_ok=True)
    params, run_rows, summary_rows = summarise(sweep, job_list, results)
    _csv(out / "runs.csv", [*params, "seed", "metric", "value"], run_rows)
    _csv(
        out / "summary.csv",
        [*params, "metric", "n", "mean", "sd", "ci95_low", "ci95_high"],
        summary_rows,
    )
    base = parse(sweep.scenario_data({}, 0), sweep.base_source)
    doc = {
        "sweep": {
            "name": sweep.name,
            "scenario_file": Path(sweep.base_source).name,
            "seeds": sweep.seeds,
            "grid": {p: v for p, v in sweep.grid},
            "metrics": sweep.metrics,
        },
        "base_scenario": provenance.resolved(base),
        "runs": [
            {
                "point": j.point,
                "seed": j.seed,
                "inputs_sha256": r["provenance"]["inputs_sha256"],
            }
            for j, r in zip(job_list, results, strict=True)
        ],
        "inputs_sha256": sweep_inputs_sha256(sweep),
        "code": provenance.code_version(),
        "environment": provenance.environment(),
        "engine": engine,
    }
    (out / "sweep.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    figures = _figures(sweep, params, summary_rows, out)
    (out / "report.md").write_text(_render(sweep, params, summary_rows, figures, doc))
    return doc


def sweep_inputs_sha256(sweep: Sweep) -> str:
    """The staleness key of a sweep: every run's inputs, in order."""
    import hashlib

    keys = [provenance.inputs_sha256(parse(j.data, sweep.base_source)) for j in jobs(sweep, None)]
    spec = json.dumps({"grid": sweep.grid, "seeds": sweep.seeds, "metrics": sweep.metrics})
    return hashlib.sha256((spec + "".join(keys)).encode()).hexdigest()


def _figures(sweep: Sweep, params: list[str], rows: list[list[Any]], out: Path) -> list[str]:
    if not params or not sweep.metrics:
        return []
    from .figures import figure_style, save_figure

    figure_style()
    import matplotlib.pyplot as plt

    x_param, series_params = params[0], params[1:]
    made = []
    np_ = len(params)
    for metric in sweep.metrics:
        sel = [r for r in rows if r[np_] == metric]
        if not sel:
            raise SweepError(f"metrics: no metric named {metric!r} in the runs' metrics.csv")
        fig, ax = plt.subplots(figsize=(3.5, 2.6))
        series: dict[tuple, list[list[Any]]] = {}
        for r in sel:
            series.setdefault(tuple(r[1:np_]), []).append(r)
        xs_all = [r[0] for r in sel]
        span = (max(xs_all) - min(xs_all)) or 1
        for i, (key, rs) in enumerate(series.items()):
            rs = sorted(rs, key=lambda r: r[0])
            # Series side by side at each x (a small dodge) so their intervals do not overlap.
            dodge = (i - (len(series) - 1) / 2) * 0.012 * span
            xs = [r[0] + dodge for r in rs]
            mean = np.array([np.nan if r[np_ + 2] is None else r[np_ + 2] for r in rs])
            lo = np.array([np.nan if r[np_ + 4] is None else r[np_ + 4] for r in rs])
            hi = np.array([np.nan if r[np_ + 5] is None else r[np_ + 5] for r in rs])
            label = ", ".join(f"{p} = {v}" for p, v in zip(series_params, key, strict=True))
            ax.errorbar(
                xs,
                mean,
                yerr=[mean - lo, hi - mean],
                marker="o",
                markersize=3,
                capsize=2,
                linewidth=1,
                label=label or None,
            )
        ax.set_xlim(
            min(xs_all) - 0.05 * (max(xs_all) - min(xs_all) or 1),
            max(xs_all) + 0.05 * (max(xs_all) - min(xs_all) or 1),
        )
        ax.set_xlabel(_param_label(x_param))
        ax.set_ylabel(metric.split(".")[-1].replace("_", " "))
        n = sorted({r[np_ + 1] for r in sel})
        ax.set_title(
            f"mean and 95% interval, n = {n[0] if len(n) == 1 else n} seeds per point", fontsize=7
        )
        if series_params:
            ax.legend(fontsize=6)
        fig.tight_layout()
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", metric)
        made += save_figure(fig, out, stem)
    return made


# The metrics a report shows when the sweep names none (summary.csv has them all).
HEADLINE = re.compile(
    r"(recall\[[^]]*\]\.(protocol_recall|plaintext_pdq_recall)"
    r"|matching\.(confirmed_matches|true_matches)"
    r"|takedown\.contents_taken_down|wrongful_takedowns\.total"
    r"|leakage\.[^.]+\.(bits_per_threshold_query|spec_bound_bits_per_threshold_query)"
    r"|attacks\.runs\[[^]]*\]\.days_to_first_hash"
    r"|cost\.(bytes_per_query|cpu_s_per_query))$"
)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _render(sweep: Sweep, params: list[str], rows: list[list[Any]], figures: list[str], doc) -> str:
    np_ = len(params)
    lines = [
        f"# Sweep: {sweep.name}",
        "",
        f"Scenario `{Path(sweep.base_source).name}` over "
        + (", ".join(f"`{p}` in {v}" for p, v in sweep.grid) or "no parameters")
        + f", {sweep.seeds} seeds per point ({len(doc['runs'])} runs). Means with 95% "
        "t-intervals over seeds (n = seeds); every run's metrics are in runs.csv, the "
        "summary in summary.csv, the grid, seeds and every run's inputs hash in sweep.json.",
        "",
    ]
    shown = sweep.metrics or [m for m in dict.fromkeys(r[np_] for r in rows) if HEADLINE.match(m)]
    lines += [
        "| " + " | ".join([*params, "metric", "n", "mean", "95% interval"]) + " |",
        "|" + "---|" * (np_ + 4),
    ]
    for r in rows:
        if r[np_] in shown:
            lines.append(
                "| "
                + " | ".join(
                    [
                        *(str(x) for x in r[:np_]),
                        r[np_],
                        str(r[np_ + 1]),
                        _fmt(r[np_ + 2]),
                        f"{_fmt(r[np_ + 4])} .. {_fmt(r[np_ + 5])}",
                    ]
                )
                + " |"
            )
    lines.append("")
    for f in figures:
        if f.endswith(".png"):
            stem = f[:-4]
            lines.append(f"![{stem}]({f}) ([SVG]({stem}.svg))")
            lines.append("")
    code = doc["code"]
    lines += [
        "## Provenance",
        "",
        f"- Code: blindmatch {code['package_version']}, `git describe` "
        f"{code['git_describe'] or 'unavailable'}, sources sha256 `{code['source_sha256'][:16]}`.",
        f"- Inputs sha256 `{doc['inputs_sha256']}` (every run's scenario, the simulator, CPU "
        "costs and LSH schemes).",
        "",
    ]
    return "\n".join(lines)


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    engine: str = "processes",
    workers: int | None = None,
    scheduler: str | None = None,
    keep_runs: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    out_dir = Path(out)
    job_list = jobs(sweep, out_dir / "runs" if keep_runs else None)
    results = execute(sweep, job_list, engine, workers, scheduler, progress)
    return write_outputs(sweep, job_list, results, out_dir, engine)
