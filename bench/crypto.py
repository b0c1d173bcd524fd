"""Crypto benchmark: every protocol step against the scalar-multiplication floor of this core.

    ./dev bench crypto [--repeats N] [--batch N]

The floor is libsodium's ristretto255 variable-base scalar multiplication called in a tight loop
(and, separately, its fixed-base multiplication, point addition and the one-way map). Each step
is timed (median of N repeats) and its group operations are *counted* by instrumenting the
libsodium wrapper during one run. Two ratios are printed per step:

- vs scalar-mult floor: measured / (variable-base mults x t_var + fixed-base mults x t_base)
- vs group-op floor:    the same plus additions, one-way maps and inversions at their cost

Results: bench/results/crypto.md and crypto.json (the simulator calibrates its cost model
from the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from blindmatch.crypto import oprf, sodium
from blindmatch.crypto import threshold as th

RESULTS = Path(__file__).resolve().parent / "results"
# CPU time of this (single-threaded) process: the machine's two cores are shared, and wall time
# would charge a step for the time other processes held the core.
_clock = time.process_time
COUNTED = {
    "scalarmult": "var",
    "scalarmult_base": "base",
    "point_add": "add",
    "point_sub": "add",
    "from_hash": "map",
    "scalar_invert": "inv",
    "is_valid_point": "valid",
}
# The batched wrappers: one call does one operation per 32-byte row of its longer operand.
COUNTED_ROWS = {
    "scalarmult_many": "var",
    "scalarmult_base_many": "base",
    "point_add_many": "add",
    "point_sub_many": "add",
}


def median_time(fn: Callable[[], object], repeats: int, inner: int = 1) -> float:
    samples = []
    for _ in range(repeats):
        t0 = _clock()
        for _ in range(inner):
            fn()
        samples.append((_clock() - t0) / inner)
    return statistics.median(samples)


class Floor:
    """Per-operation cost of the raw libsodium calls (preallocated buffers, tight loops).

    The machine is shared, so the floor is sampled again right next to every sample of every
    step (:meth:`sample`) and each ratio uses the floor samples taken beside that step's own.
    """

    OPS = ("var", "base", "add", "map", "inv", "valid")

    def __init__(self, loops: int = 300) -> None:
        lib, ffi = sodium.lib, sodium.ffi
        out = ffi.new("unsigned char[32]")
        k = sodium.scalar_random()
        p = sodium.scalarmult_base(sodium.scalar_random())
        q = sodium.scalarmult_base(sodium.scalar_random())
        h = os.urandom(64)
        self.loops = loops
        self.calls: dict[str, Callable[[], object]] = {
            "var": lambda: lib.crypto_scalarmult_ristretto255(out, k, p),
            "base": lambda: lib.crypto_scalarmult_ristretto255_base(out, k),
            "add": lambda: lib.crypto_core_ristretto255_add(out, p, q),
            "map": lambda: lib.crypto_core_ristretto255_from_hash(out, h),
            "inv": lambda: lib.crypto_core_ristretto255_scalar_invert(out, k),
            "valid": lambda: lib.crypto_core_ristretto255_is_valid_point(p),
        }
        self.samples: dict[str, list[float]] = {op: [] for op in self.OPS}

    def sample(self) -> dict[str, float]:
        got = {}
        for op, call in self.calls.items():
            n = self.loops if op in ("var", "base", "add", "map", "inv") else self.loops * 4
            t0 = _clock()
            for _ in range(n):
                call()
            got[op] = (_clock() - t0) / n
            self.samples[op].append(got[op])
        return got

    def median(self) -> dict[str, float]:
        return {op: statistics.median(v) for op, v in self.samples.items()}


@contextmanager
def counting():
    counts: Counter[str] = Counter()
    originals = {name: getattr(sodium, name) for name in (*COUNTED, *COUNTED_ROWS)}

    def wrap(name: str, fn: Callable):  # type: ignore[type-arg]
        if name in COUNTED_ROWS:

            def counted_rows(*args):  # type: ignore[no-untyped-def]
                counts[COUNTED_ROWS[name]] += max(len(a) for a in args) // sodium.POINT_BYTES
                return fn(*args)

            return counted_rows

        def counted(*args):  # type: ignore[no-untyped-def]
            counts[COUNTED[name]] += 1
            return fn(*args)

        return counted

    for name, fn in originals.items():
        setattr(sodium, name, wrap(name, fn))
    try:
        yield counts
    finally:
        for name, fn in originals.items():
            setattr(sodium, name, fn)


def step(
    name: str,
    fn: Callable[[], object],
    floor: Floor,
    repeats: int,
    per: int = 1,
    unit: str = "call",
) -> dict[str, object]:
    with counting() as counts:
        fn()
    beside: list[dict[str, float]] = []
    samples = []
    for _ in range(repeats):
        beside.append(floor.sample())
        t0 = _clock()
        fn()
        samples.append((_clock() - t0) / per)
    beside.append(floor.sample())
    cost = {op: statistics.median(b[op] for b in beside) for op in Floor.OPS}
    measured = statistics.median(samples)
    ops = {k: v / per for k, v in counts.items()}
    smult_floor = ops.get("var", 0) * cost["var"] + ops.get("base", 0) * cost["base"]
    group_floor = smult_floor + sum(ops.get(k, 0) * cost[k] for k in ("add", "map", "inv", "valid"))
    return {
        "step": name,
        "unit": unit,
        "median_s": measured,
        "floor_beside_s": cost,
        "ops": ops,
        "scalarmult_floor_s": smult_floor,
        "group_op_floor_s": group_floor,
        "ratio_vs_scalarmult_floor": measured / smult_floor if smult_floor else None,
        "ratio_vs_group_op_floor": measured / group_floor if group_floor else None,
    }


def run(repeats: int, batch: int) -> dict[str, object]:
    floor = Floor()
    key = oprf.generate_key_pair()
    inputs = [os.urandom(40) for _ in range(batch)]
    blinds, blinded = oprf.blind(inputs, oprf.Mode.VOPRF)
    evaluated, proof = oprf.blind_evaluate(key, blinded, oprf.Mode.VOPRF)
    steps = [
        step(
            "OPRF BlindEvaluate, batched, no proof (OPRF mode)",
            lambda: oprf.blind_evaluate(key, blinded, oprf.Mode.OPRF),
            floor,
            repeats,
            per=batch,
            unit="element",
        ),
        step(
            "VOPRF BlindEvaluate, batched, one DLEQ proof",
            lambda: oprf.blind_evaluate(key, blinded, oprf.Mode.VOPRF),
            floor,
            repeats,
            per=batch,
            unit="element",
        ),
        step(
            "VOPRF client Blind",
            lambda: oprf.blind(inputs, oprf.Mode.VOPRF),
            floor,
            repeats,
            per=batch,
            unit="element",
        ),
        step(
            "VOPRF client Finalize (verifies the batch proof)",
            lambda: oprf.finalize(
                inputs, blinds, evaluated, oprf.Mode.VOPRF, blinded, proof, key.pk
            ),
            floor,
            repeats,
            per=batch,
            unit="element",
        ),
    ]
    qkey = th.QuerierKey.generate()
    x = os.urandom(32)
    encrypted = th.encrypt_query(qkey, x, os.urandom(16))
    verified = th.verify_query(encrypted)
    many = th.VerifiedQuery(encrypted)  # a query that has already had many candidates
    for _ in range(63):
        many.encrypted_distance(os.urandom(32))
    y = bytearray(x)
    y[0] ^= 0x0F
    response = th.respond(verified, bytes(y), (31,))
    steps += [
        step(
            "Threshold: querier encrypts + proves 256 bits (once per query hash)",
            lambda: th.encrypt_query(qkey, x, b"q" * 16),
            floor,
            max(3, repeats // 2),
            unit="query hash",
        ),
        step(
            "Threshold: holder verifies 256 bit proofs (once per query hash and holder)",
            lambda: th.verify_query(encrypted),
            floor,
            max(3, repeats // 2),
            unit="query hash",
        ),
        step(
            "Threshold: holder answers a query's first candidate (T = 31)",
            lambda: th.respond(th.VerifiedQuery(encrypted), bytes(y), (31,)),
            floor,
            repeats,
            unit="candidate",
        ),
        step(
            "Threshold: holder answers a further candidate, after many (T = 31)",
            lambda: th.respond(many, bytes(y), (31,)),
            floor,
            repeats,
            unit="candidate",
        ),
        step(
            "Threshold: querier decides one candidate (T = 31)",
            lambda: th.decide(qkey, response),
            floor,
            repeats,
            unit="candidate",
        ),
    ]
    no_proof = steps[0]
    beside_var = no_proof["floor_beside_s"]["var"]  # type: ignore[index]
    rate_ratio = beside_var / float(no_proof["median_s"])  # type: ignore[arg-type]
    return {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "libsodium": sodium.version(),
            "cpus": os.cpu_count(),
        },
        "repeats": repeats,
        "batch": batch,
        "floor_s": floor.median(),
        "floor_rate_var_per_s": 1 / floor.median()["var"],
        "blind_evaluate_no_proof_rate_vs_floor": rate_ratio,
        "targets": {
            "blind_evaluate_no_proof_rate_vs_floor >= 0.85": rate_ratio >= 0.85,
            "every step <= 1.25x its scalar-mult floor": all(
                s["ratio_vs_scalarmult_floor"] <= 1.25
                for s in steps
                if s["ratio_vs_scalarmult_floor"] is not None
            ),
            "every step <= 1.25x its group-op floor": all(
                (s["ratio_vs_group_op_floor"] or 0) <= 1.25 for s in steps
            ),
        },
        "steps": steps,
    }


def _us(s: float) -> str:
    return f"{s * 1e6:,.1f} µs" if s < 1e-2 else f"{s * 1e3:,.2f} ms"


def _ratio(x: float | None) -> str:
    return "— (no mults)" if x is None else f"{x:.2f}x"


def render_markdown(r: dict) -> str:
    f = r["floor_s"]
    lines = [
        "# Crypto benchmark",
        "",
        f"Machine: {r['machine']['processor']}, {r['machine']['cpus']} CPUs, "
        f"{r['machine']['platform']}, Python {r['machine']['python']}, libsodium "
        f"{r['machine']['libsodium']}. One core, process CPU time, medians of {r['repeats']} "
        "repeats, batch "
        f"{r['batch']}. Regenerate with `./dev bench crypto`.",
        "",
        "## The floor on this core (raw libsodium calls)",
        "",
        "| operation | median | per second |",
        "|---|---:|---:|",
    ]
    names = {
        "var": "variable-base scalar multiplication (the floor)",
        "base": "fixed-base scalar multiplication",
        "add": "point addition (decode + add + encode)",
        "map": "one-way map (hash to group)",
        "inv": "scalar inversion",
        "valid": "point validation",
    }
    for k, label in names.items():
        lines.append(f"| {label} | {_us(f[k])} | {1 / f[k]:,.0f} |")
    lines += [
        "",
        f"**Batched BlindEvaluate without proof runs at "
        f"{r['blind_evaluate_no_proof_rate_vs_floor']:.3f} of the floor's rate** (target >= 0.85).",
        "",
        "## Steps",
        "",
        "Counts are group operations per unit, measured by instrumenting the wrapper.",
        "",
        "| step | per | median | var / base / add | vs scalar-mult floor | vs group-op floor |",
        "|---|---|---:|---|---:|---:|",
    ]
    for s in r["steps"]:
        ops = s["ops"]
        counts = f"{ops.get('var', 0):g} / {ops.get('base', 0):g} / {ops.get('add', 0):g}"
        lines.append(
            f"| {s['step']} | {s['unit']} | {_us(s['median_s'])} | {counts} | "
            f"{_ratio(s['ratio_vs_scalarmult_floor'])} | {_ratio(s['ratio_vs_group_op_floor'])} |"
        )
    lines += ["", "## Targets", ""]
    for k, v in r["targets"].items():
        lines.append(f"- {'met' if v else 'MISSED'}: {k}")
    lines += ["", *_why_two_ratios(r), ""]
    return "\n".join(lines)


def _why_two_ratios(r: dict) -> list[str]:
    """The paragraph on the steps whose additions alone keep them above 1.25x, from the run."""
    f = r["floor_s"]
    lines = [
        "Why two ratios: libsodium 1.0.18 exposes ristretto255 only through 32-byte encodings, "
        "so every point addition decodes both operands and encodes the sum (an inverse square "
        f"root each way): {_us(f['add'])} here, {f['add'] / f['var']:.2f} of a variable-base "
        f"and {f['add'] / f['base']:.2f} of a fixed-base multiplication. It has no "
        "extended-coordinate or multi-scalar API, and the project does not implement group "
        "arithmetic of its own, so additions cannot be made cheaper or folded into "
        "multiplications. The homomorphic Hamming sum, the proof checks and the answer's "
        "re-randomisation (A' = rho*A_D + sigma*G, B' = rho*(B_D - t*G) + sigma*H: three "
        "additions per t, needed for the answer's distribution) need them. The group-op ratio "
        "shows how close the code is to what its operations cost; the scalar-mult ratio is "
        "what the issue asked. Of a holder's additions per candidate at T = 31, 95 are the "
        "re-randomisation and the rest the encrypted distance: 2 x 255 for a query's first "
        "candidate (a sum of 256 ciphertexts), about 2 x 63 for later ones (per-nibble subset "
        "tables). Below, every step that does group operations other than multiplications "
        "(additions, one-way maps, inversions, validations), with the count and share of the "
        "step's group-op floor of each, and the scalar-mult ratio the step would have with no "
        "overhead at all (its group-op floor over its scalar-mult floor); where that is above "
        "1.25x, no code on libsodium 1.0.18's API meets the scalar-mult target:",
        "",
    ]
    for s in r["steps"]:
        ops, cost = s["ops"], s["floor_beside_s"]
        extra = {k: ops.get(k, 0) for k in ("add", "map", "inv", "valid") if ops.get(k, 0)}
        if not extra or not s["scalarmult_floor_s"]:
            continue
        bound = s["group_op_floor_s"] / s["scalarmult_floor_s"]
        shares = ", ".join(
            f"{_EXTRA_NAMES[k]} {_count(n)} ({n * cost[k] / s['group_op_floor_s']:.0%})"
            for k, n in extra.items()
        )
        verdict = (
            "cannot reach 1.25x"
            if bound > 1.25
            else f"reaches 1.25x only if all other work stays under "
            f"{(1.25 / bound - 1) * 100:.1f}% of its floor"
        )
        lines.append(
            f"- {s['step']}: {shares} of the group-op floor per {s['unit']}; "
            f"{bound:.2f}x with no overhead, "
            f"{s['ratio_vs_scalarmult_floor']:.2f}x measured: {verdict}."
        )
    return lines


def _count(n: float) -> str:
    return f"{n:,.0f}" if n >= 10 or n == int(n) else f"{n:.3f}"


_EXTRA_NAMES = {
    "add": "additions",
    "map": "one-way maps",
    "inv": "inversions",
    "valid": "validations",
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench crypto", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args.repeats, args.batch)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "crypto.json").write_text(json.dumps(result, indent=2) + "\n")
    md = render_markdown(result)
    (args.out / "crypto.md").write_text(md)
    print(md)
    return 0
