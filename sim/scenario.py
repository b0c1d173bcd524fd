"""Scenario files: plain TOML (or JSON) validated at load into typed dataclasses.

Every field has a type and a range; an unknown field, a wrong type or an out-of-range value is a
:class:`ScenarioError` naming the file, the field's dotted path and what was expected, so a typo
("latncy_ms") fails at load instead of silently running a default.
"""

from __future__ import annotations

import itertools
import json
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

ROLES = ("hub", "platform", "auditor", "generator")


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the field and the problem."""


def _range(lo: float | None = None, hi: float | None = None, choices: tuple = ()) -> dict:
    return {"lo": lo, "hi": hi, "choices": choices}


@dataclass(frozen=True)
class NodeGroup:
    """``count`` nodes of one role, named ``{role}-{i}`` (numbered across groups of a role)."""

    role: str = field(metadata=_range(choices=ROLES))
    count: int = field(default=1, metadata=_range(1, 10_000))
    bank_size: int = field(default=0, metadata=_range(0, 100_000_000))  # hashes held at start
    uploads_per_day: float = field(default=0.0, metadata=_range(0, 1e9))  # queries it sends
    trusted: bool = False  # provenance a querier's policy may auto-action on


@dataclass(frozen=True)
class Workload:
    source: str = field(default="synthetic", metadata=_range(choices=("synthetic", "corpus")))
    # Share of hub/platform banks that are NCII in circulation (re-uploads are drawn from it);
    # the rest of a bank is other banked material that is never re-uploaded in the run.
    circulating_share: float = field(default=0.1, metadata=_range(0, 1))
    original_share: float = field(default=0.05, metadata=_range(0, 1))  # uploads: exact re-uploads
    edited_share: float = field(default=0.1, metadata=_range(0, 1))  # uploads: edited copies
    # the rest of the uploads are unrelated media; `popular_share` of those come from a pool of
    # popular harmless images (memes) with a Zipf popularity, the rest are unique
    popular_share: float = field(default=0.3, metadata=_range(0, 1))
    popular_pool: int = field(default=10_000, metadata=_range(1, 10_000_000))
    zipf_s: float = field(default=1.1, metadata=_range(1.0001, 5))
    edit_mix: dict[str, float] = field(default_factory=dict)  # transform -> weight; {} = all
    submissions_per_day: float = field(default=0.0, metadata=_range(0, 1e7))  # per hub
    withdrawals_per_day: float = field(default=0.0, metadata=_range(0, 1e7))  # per hub
    query_batch_s: float = field(default=600.0, metadata=_range(1, 86_400))


@dataclass(frozen=True)
class Outage:
    node: str
    start_h: float = field(metadata=_range(0, 1e6))
    hours: float = field(metadata=_range(0, 1e6))


@dataclass(frozen=True)
class Partition:
    groups: list[list[str]]
    start_h: float = field(metadata=_range(0, 1e6))
    hours: float = field(metadata=_range(0, 1e6))


@dataclass(frozen=True)
class Network:
    latency_ms: float = field(default=80.0, metadata=_range(0, 1e6))  # median one-way
    latency_sigma: float = field(default=0.5, metadata=_range(0, 5))  # lognormal shape
    bandwidth_mbps: float = field(default=100.0, metadata=_range(0.001, 1e6))
    loss: float = field(default=0.0, metadata=_range(0, 0.99))
    retry_s: float = field(default=30.0, metadata=_range(0.001, 86_400))
    replication_s: float = field(default=300.0, metadata=_range(0, 1e7))  # index feed pull period
    outages: list[Outage] = field(default_factory=list)
    partitions: list[Partition] = field(default_factory=list)


@dataclass(frozen=True)
class Policy:
    """The simulator's decision model (mirrors the node's policy semantics as specified)."""

    auto_max_band: int = field(default=16, metadata=_range(0, 128))
    bands: list[int] = field(default_factory=lambda: [8, 16, 31])
    review_hours: float = field(default=8.0, metadata=_range(0, 1e4))
    reviewer_error: float = field(default=0.02, metadata=_range(0, 1))
    dispute_prob: float = field(default=0.8, metadata=_range(0, 1))
    dispute_hours: float = field(default=24.0, metadata=_range(0, 1e4))
    quarantine_matches_per_day: int = field(default=20, metadata=_range(1, 1_000_000_000))
    quarantine_disputes: int = field(default=3, metadata=_range(1, 1_000_000))


@dataclass(frozen=True)
class Budget:
    evaluations_per_hour: int = field(default=200_000, metadata=_range(1))
    evaluations_per_day: int = field(default=2_000_000, metadata=_range(1))
    threshold_items_per_hour: int = field(default=20_000, metadata=_range(1))
    # the roster's default (spec 8.3): candidates, from the honest rate
    threshold_items_per_day: int = field(default=20_000, metadata=_range(1))


@dataclass(frozen=True)
class Prober:
    """A querier that tries to recover a peer's hashes within its budget (section 8.3)."""

    target: str
    identities: list[int] = field(default_factory=lambda: [1, 10, 100])
    days: float = field(default=365.0, metadata=_range(0.01, 1e5))


@dataclass(frozen=True)
class Adversaries:
    curious_holders: list[str] = field(default_factory=list)
    prober: Prober | None = None
    poisoner: str | None = None  # a holder that banks popular harmless images
    poison_hashes: int = field(default=0, metadata=_range(0, 100_000_000))
    feedback: dict[str, str] = field(default_factory=dict)  # node -> "withhold" | "replay"


@dataclass(frozen=True)
class Uploaders:
    """Uploader populations, context and cross-service signals (sim/uploaders.py)."""

    abusers: int = field(default=40, metadata=_range(1, 10_000_000))  # repeat-abuser identities
    abuser_contents: float = field(default=0.2, metadata=_range(0, 1))  # pictures they own
    abuser_upload_share: float = field(default=0.7, metadata=_range(0, 1))  # of those uploads
    self_share: float = field(default=0.08, metadata=_range(0, 1))  # consensual self-uploads
    self_declared: float = field(default=0.7, metadata=_range(0, 1))  # flagged by the platform
    false_self_claim: float = field(default=0.05, metadata=_range(0, 1))  # abusers lying
    abuser_account_days: float = field(default=12.0, metadata=_range(0.1, 1e5))  # mean age
    new_account_days: float = field(default=30.0, metadata=_range(0, 1e5))
    report_rate_abuser: float = field(default=0.3, metadata=_range(0, 1))
    report_rate_one_off: float = field(default=0.1, metadata=_range(0, 1))
    reviews_per_hour: float = field(default=6.0, metadata=_range(0.001, 1e6))  # per platform
    reviewer_self_detect: float = field(default=0.2, metadata=_range(0, 1))  # unflagged
    reviewer_self_detect_flagged: float = field(default=0.95, metadata=_range(0, 1))
    curious_dictionary: int = field(default=1_000_000, metadata=_range(1, 10**12))


@dataclass(frozen=True)
class Scenario:
    name: str
    nodes: list[NodeGroup]
    seed: int = field(default=1, metadata=_range(0, 2**63 - 1))
    mode: str = field(default="modelled", metadata=_range(choices=("modelled", "exact")))
    days: float = field(default=1.0, metadata=_range(0.001, 3650))
    description: str = ""
    scheme: str = "pdq-lsh-1"
    threshold: int = field(default=31, metadata=_range(0, 128))
    # How a querier asks the threshold test (protocol.md 8.5, 10.5): "rounds", as the node does
    # (each query hash's best candidate first, then the rest in one more round that shows the
    # tokens of what the first confirmed, answered ``same``, and names the query by digest,
    # ``query_ref``, 7.3); "at-once", every candidate in one round with the whole query (an
    # older holder's way, kept for comparison).
    threshold_flow: str = field(default="rounds", metadata=_range(choices=("rounds", "at-once")))
    checkpoint_every: int = field(default=50, metadata=_range(1, 1_000_000))  # batches
    workload: Workload = field(default_factory=Workload)
    network: Network = field(default_factory=Network)
    policy: Policy = field(default_factory=Policy)
    budget: Budget = field(default_factory=Budget)
    adversaries: Adversaries = field(default_factory=Adversaries)
    uploaders: Uploaders | None = None  # uploader populations and their signals, if set

    def node_names(self) -> list[str]:
        names, seen = [], dict.fromkeys(ROLES, 0)
        for g in self.nodes:
            for _ in range(g.count):
                names.append(f"{g.role}-{seen[g.role]}")
                seen[g.role] += 1
        return names


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], path)
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise ScenarioError(f"{path}: expected a table, got {type(value).__name__}")
        return _build(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise ScenarioError(f"{path}: expected a list, got {type(value).__name__}")
        (inner,) = typing.get_args(tp)
        return [_convert(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ScenarioError(f"{path}: expected a table, got {type(value).__name__}")
        _, inner = typing.get_args(tp)
        return {str(k): _convert(v, inner, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ScenarioError(f"{path}: expected a string, got {value!r}")
        return value
    raise ScenarioError(f"{path}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _build(cls: Any, data: dict[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ScenarioError(
            f"{path}: unknown field {unknown[0]!r} (known fields: {', '.join(sorted(known))})"
        )
    kwargs = {}
    for name, f in known.items():
        where = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ScenarioError(f"{where}: required field is missing")
            continue
        value = _convert(data[name], hints[name], where)
        meta = f.metadata
        if meta.get("choices") and value not in meta["choices"]:
            raise ScenarioError(
                f"{where}: must be one of {', '.join(meta['choices'])}, not {value!r}"
            )
        if meta.get("lo") is not None and value < meta["lo"]:
            raise ScenarioError(f"{where}: must be >= {meta['lo']}, got {value!r}")
        if meta.get("hi") is not None and value > meta["hi"]:
            raise ScenarioError(f"{where}: must be <= {meta['hi']}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def _check(s: Scenario) -> None:
    from blindmatch.protocol.lsh import SCHEMES

    from .pdq_model import edit_names

    if s.scheme not in SCHEMES:
        raise ScenarioError(f"scheme: unknown LSH scheme {s.scheme!r} ({', '.join(SCHEMES)})")
    names = set(s.node_names())
    if len(names) < 2:
        raise ScenarioError("nodes: a federation needs at least two nodes")
    w = s.workload
    if w.original_share + w.edited_share > 1:
        raise ScenarioError("workload: original_share + edited_share must be <= 1")
    for t, weight in w.edit_mix.items():
        if t not in edit_names():
            raise ScenarioError(
                f"workload.edit_mix.{t}: unknown edit (known: {', '.join(edit_names())})"
            )
        if weight < 0:
            raise ScenarioError(f"workload.edit_mix.{t}: weight must be >= 0")
    b = s.policy.bands
    if not b or any(x >= y for x, y in itertools.pairwise(b)) or b[-1] != s.threshold:
        raise ScenarioError(
            f"policy.bands: must be strictly increasing and end at threshold {s.threshold}"
        )
    for i, o in enumerate(s.network.outages):
        if o.node not in names:
            raise ScenarioError(f"network.outages[{i}].node: no node named {o.node!r}")
    for i, p in enumerate(s.network.partitions):
        for g in p.groups:
            for n in g:
                if n not in names:
                    raise ScenarioError(f"network.partitions[{i}].groups: no node named {n!r}")
    a = s.adversaries
    for n in [*a.curious_holders, *a.feedback, *([a.poisoner] if a.poisoner else [])]:
        if n not in names:
            raise ScenarioError(f"adversaries: no node named {n!r}")
    for n, how in a.feedback.items():
        if how not in ("withhold", "replay"):
            raise ScenarioError(f"adversaries.feedback.{n}: must be withhold or replay")
    if a.prober and a.prober.target not in names:
        raise ScenarioError(f"adversaries.prober.target: no node named {a.prober.target!r}")


def parse(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    try:
        scenario = _build(Scenario, data, "")
        _check(scenario)
    except ScenarioError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    return scenario


def load(path: str | Path) -> Scenario:
    return parse(load_data(path), str(path))


def load_data(path: str | Path) -> dict[str, Any]:
    """A scenario file's data as read, before validation (a sweep edits it per point)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if p.suffix == ".json" else "TOML"
        raise ScenarioError(f"{p}: not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{p}: a scenario is a table of fields")
    return data
