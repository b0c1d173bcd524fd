"""PNG plots of a transparency report (matplotlib, Agg; none when matplotlib is missing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blindmatch.node.translog.report_model import (
    APPEAL_STATUSES,
    OPINIONS,
    OUTCOMES,
    TransparencyReport,
)


def plot_report(report: TransparencyReport, out_dir: Path) -> list[Path]:
    """Write the PNG plots; returns their paths (none if matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    labels = sorted(report.periods)
    if not labels:
        return []
    stats = [report.periods[p] for p in labels]
    xs = list(range(len(labels)))
    paths: list[Path] = []

    def finish(fig: Any, ax: Any, name: str, title: str, ylabel: str) -> None:
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        step = max(1, (len(labels) + 13) // 14)  # at most ~14 labels on the axis
        ax.set_xticks(xs[::step])
        ax.set_xticklabels(labels[::step], rotation=45 if len(labels) > 6 else 0, ha="right")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.grid(axis="y", alpha=0.3)
        fig.text(
            0.99, 0.01,
            f"log {report.head.log_id}, tree size {report.head.tree_size}, "
            f"root {report.head.root_hash.hex()[:16]}…",
            ha="right", fontsize=7, color="grey",
        )  # fmt: skip
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    def stacked(name: str, title: str, series: dict[str, list[int]], ylabel: str) -> None:
        if not any(v for values in series.values() for v in values):
            return  # nothing of this kind in the log: no empty chart
        fig, ax = plt.subplots(figsize=(9, 4))
        bottom = [0] * len(xs)
        for label, values in series.items():
            ax.bar(xs, values, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        finish(fig, ax, name, title, ylabel)

    bands = sorted({b for s in stats for b in s.matches}, key=int)
    stacked(
        "matches.png",
        f"Confirmed matches per {report.period}, by distance band",
        {f"distance ≤ {b}": [s.matches[b] for s in stats] for b in bands}
        or {"matches": [0] * len(xs)},
        "matches",
    )

    def plot_decisions() -> None:
        fig, ax = plt.subplots(figsize=(9, 4))
        width = 0.38
        bottom = [0] * len(xs)
        for o in OUTCOMES:
            values = [s.decisions[o] for s in stats]
            ax.bar([x - width / 2 for x in xs], values, width, bottom=bottom, label=o)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        bottom = [0] * len(xs)
        for who, hatch in (("policy", "//"), ("reviewer", "..")):
            values = [s.decisions_by[who] for s in stats]
            ax.bar([x + width / 2 for x in xs], values, width, bottom=bottom, hatch=hatch,
                   fill=False, label=f"by {who}")  # fmt: skip
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        finish(fig, ax, "decisions.png",
               f"Review decisions per {report.period}: outcome (left), who decided (right)",
               "decisions")  # fmt: skip

    def plot_appeals() -> None:
        fig, ax = plt.subplots(figsize=(9, 4))
        width = 0.27
        for i, status in enumerate(APPEAL_STATUSES):
            ax.bar([x + (i - 1) * width for x in xs], [s.appeals[status] for s in stats], width,
                   label=status)  # fmt: skip
        rates = [s.overturn_rate for s in stats]
        if any(r is not None for r in rates):
            ax2 = ax.twinx()
            ax2.plot(
                [x for x, r in zip(xs, rates, strict=True) if r is not None],
                [100 * r for r in rates if r is not None],
                color="black", marker="o", label="overturn rate",
            )  # fmt: skip
            ax2.set_ylim(0, 100)
            ax2.set_ylabel("overturn rate (%)")
            ax2.legend(fontsize="small", loc="lower left", bbox_to_anchor=(1.08, 0.0))
        finish(fig, ax, "appeals.png", f"Appeals per {report.period}", "appeals")

    if any(s.decisions_by[w] for s in stats for w in ("policy", "reviewer")):
        plot_decisions()
    if any(s.appeals[a] for s in stats for a in APPEAL_STATUSES):
        plot_appeals()
    stacked(
        "feedback.png",
        f"Feedback per {report.period} (sent and received)",
        {o: [s.feedback_sent[o] + s.feedback_received[o] for s in stats] for o in OPINIONS},
        "records",
    )
    stacked(
        "index.png",
        f"Blinded index entries published per {report.period}",
        {
            "added": [s.index_entries_added for s in stats],
            "removed (withdrawn, expired)": [s.index_entries_removed for s in stats],
        },
        "index entries",
    )
    if report.traffic:
        keys = sorted(report.traffic)
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(keys) + 2))
        names = [f"{peer} ({direction})" for peer, direction in keys]
        ys = list(range(len(keys)))
        axes[0].barh(ys, [report.traffic[k].evaluations for k in keys], color="tab:blue")
        axes[0].set_title("blinded evaluations")
        axes[1].barh(ys, [report.traffic[k].candidates for k in keys], color="tab:orange")
        axes[1].set_title("candidates tested (threshold queries)")
        for ax in axes:
            ax.set_yticks(ys)
            ax.set_yticklabels(names, fontsize="small")
            ax.grid(axis="x", alpha=0.3)
        axes[1].set_yticklabels([])
        fig.suptitle("Per-peer volumes (received: this node answered; sent: it asked)")
        fig.tight_layout()
        path = out_dir / "traffic.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
