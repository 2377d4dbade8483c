"""``CoresetReport``: what training on a coreset gives, against random subsets of the same size and the full pool.

The verdict compares the coreset's mean score with the random subsets' over the same seeds: the margin counts
when it exceeds twice the pooled standard deviation ``sqrt(std_coreset^2 + std_random^2)`` (sample standard
deviations over the seeds, the project's definition of "beats").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..outputs import write_files

CORESET, RANDOM, FULL = "coreset", "random", "full"
BEATS, NO_BETTER, WORSE = "beats random", "no better than random", "worse than random"
UNDECIDED = "undecided (one seed gives no spread: use 2 or more)"
MARGIN_IN_STDS = 2.0
FORMAT = "hf_coreset.CoresetReport/1"


@dataclass
class CoresetReport:
    """The runs of :func:`hf_coreset.evaluate_coreset` and the verdict drawn from them.

    Attributes:
        proxy: ``"dual_encoder"`` (retrieval heads) or ``"linear_probe"`` (classifier).
        metric: the figure the verdict compares (``"r_mean"`` or ``"accuracy"``, in %).
        runs: ``{"coreset" | "random" | "full": [one record per seed]}``; a record holds ``seed``, ``rows``,
            every score of the proxy, ``train_s`` and, with a mismatch column, ``mismatched_selected``.
        method: the selection method (from the coreset's provenance), if known.
        pool_rows, test_rows: rows of the pool the proxies could use and of the test set scored.
        steps, heads, batch_size: the training recipe of every run.
        mismatch_column: the pool column that flags known-mismatched pairs, if any.
        notes: anything the reader should know about the inputs (rows dropped and why).

    Example:
        >>> report = CoresetReport("linear_probe", "accuracy", {
        ...     "coreset": [{"seed": s, "rows": 10, "accuracy": a} for s, a in enumerate([91.0, 92.0, 93.0])],
        ...     "random": [{"seed": s, "rows": 10, "accuracy": a} for s, a in enumerate([80.0, 81.0, 82.0])]})
        >>> report.summary("coreset"), report.verdict
        ((92.0, 1.0), 'beats random')
        >>> CoresetReport.from_json(report.to_json()) == report
        True
    """

    proxy: str
    metric: str
    runs: dict[str, list[dict[str, Any]]]
    method: str | None = None
    pool_rows: int = 0
    test_rows: int = 0
    steps: int = 0
    heads: str | None = None
    batch_size: int = 0
    mismatch_column: str | None = None
    notes: list[str] = field(default_factory=list)

    # -- figures ---------------------------------------------------------------------------------------------------

    @property
    def seeds(self) -> list[int]:
        return [int(r["seed"]) for r in self.runs[CORESET]]

    @property
    def coreset_rows(self) -> int:
        return int(self.runs[CORESET][0]["rows"])

    def summary(self, arm: str, key: str | None = None) -> tuple[float, float]:
        """``(mean, std)`` of ``key`` (default: the metric) over the seeds of ``arm``; std is the sample standard
        deviation (0.0 with one seed)."""
        values = np.array([float(r[key or self.metric]) for r in self.runs[arm]])
        return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0

    @property
    def margin(self) -> float | None:
        """Coreset mean minus random mean (None without a random baseline)."""
        if RANDOM not in self.runs:
            return None
        return self.summary(CORESET)[0] - self.summary(RANDOM)[0]

    @property
    def pooled_std(self) -> float | None:
        """``sqrt(std_coreset^2 + std_random^2)`` (None without a random baseline)."""
        if RANDOM not in self.runs:
            return None
        return math.hypot(self.summary(CORESET)[1], self.summary(RANDOM)[1])

    @property
    def verdict(self) -> str | None:
        """"beats random", "no better than random" or "worse than random" at 2 pooled std (None without random)."""
        if RANDOM not in self.runs:
            return None
        if min(len(self.runs[CORESET]), len(self.runs[RANDOM])) < 2:
            return UNDECIDED
        if self.margin > MARGIN_IN_STDS * self.pooled_std:
            return BEATS
        if self.margin < -MARGIN_IN_STDS * self.pooled_std:
            return WORSE
        return NO_BETTER

    def mismatched_share(self, arm: str) -> float | None:
        """Mean share (%) of known-mismatched pairs among the rows ``arm`` trained on (None without the column)."""
        if self.mismatch_column is None:
            return None
        return float(np.mean([100.0 * r["mismatched_selected"] / r["rows"] for r in self.runs[arm]]))

    # -- JSON ------------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything :meth:`from_dict` needs, plus the derived figures (summary, margin, verdict) for readers."""
        stored = {"format": FORMAT, "proxy": self.proxy, "metric": self.metric, "method": self.method,
                  "pool_rows": self.pool_rows, "test_rows": self.test_rows, "steps": self.steps,
                  "heads": self.heads, "batch_size": self.batch_size, "mismatch_column": self.mismatch_column,
                  "notes": list(self.notes), "runs": self.runs}
        derived = {"seeds": self.seeds, "coreset_rows": self.coreset_rows,
                   "summary": {arm: dict(zip(("mean", "std"), self.summary(arm))) for arm in self.runs},
                   "margin": self.margin, "pooled_std": self.pooled_std, "verdict": self.verdict}
        return {**stored, "derived": derived}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoresetReport:
        if data.get("format") != FORMAT:
            raise ValueError(f"Not a {FORMAT} record (format={data.get('format')!r}).")
        fields = ("proxy", "metric", "runs", "method", "pool_rows", "test_rows", "steps", "heads", "batch_size",
                  "mismatch_column", "notes")
        return cls(**{name: data[name] for name in fields})

    @classmethod
    def from_json(cls, text: str) -> CoresetReport:
        return cls.from_dict(json.loads(text))

    # -- rendering -------------------------------------------------------------------------------------------------

    def arm_label(self, arm: str) -> str:
        if arm == CORESET:
            return f"coreset ({self.method})" if self.method else "coreset"
        return {RANDOM: "random subsets", FULL: "full pool"}[arm]

    def headline(self) -> str:
        """One sentence: the verdict with its margin and pooled std (or the coreset's score without random)."""
        mean, std = self.summary(CORESET)
        if self.verdict is None:
            return f"Coreset: {self.metric} {mean:.2f} ± {std:.2f} (no random baseline was run)."
        if self.verdict == UNDECIDED:
            return (f"Verdict {self.verdict}: coreset {self.metric} {mean:.2f}, random subsets "
                    f"{self.summary(RANDOM)[0]:.2f}.")
        verb = "" if self.verdict == BEATS else "is "
        sentence = (f"The coreset {verb}**{self.verdict}**: {self.metric} {self.margin:+.2f} against random subsets of "
                    f"the same size (pooled std {self.pooled_std:.2f}; the verdict needs a margin beyond "
                    f"{MARGIN_IN_STDS:g} pooled std).")
        if FULL in self.runs:
            full_mean = self.summary(FULL)[0]
            if full_mean > 0:
                sentence += f" It reaches {100 * mean / full_mean:.0f} % of the full pool's {self.metric}."
        return sentence

    def to_markdown(self) -> str:
        """The headline, a table (one row per arm: rows, metric mean ± std, the other scores' means) and the setup."""
        keys = [k for k in self.runs[CORESET][0] if k not in ("seed", "rows", "train_s", "mismatched_selected",
                                                              self.metric)]
        header = ["trained on", "rows", f"{self.metric} (mean ± std)", *keys]
        if self.mismatch_column:
            header.append("mismatched pairs")
        lines = [self.headline(), "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        for arm in self.runs:
            mean, std = self.summary(arm)
            cells = [self.arm_label(arm), f"{self.runs[arm][0]['rows']:,}", f"{mean:.2f} ± {std:.2f}"]
            cells += [f"{self.summary(arm, key)[0]:.2f}" for key in keys]
            if self.mismatch_column:
                cells.append(f"{self.mismatched_share(arm):.1f} %")
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", self.setup_line()]
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def setup_line(self) -> str:
        what = ("image and text heads" + (f" ({self.heads})" if self.heads else "") + ", retrieval recall"
                if self.proxy == "dual_encoder" else "a linear probe, accuracy")
        seeds = ", ".join(str(s) for s in self.seeds)
        return (f"Proxy `{self.proxy}`: {what} on {self.test_rows:,} held-out test rows, each arm trained "
                f"{self.steps} steps (batch {self.batch_size}) per seed; seeds {seeds}; std is the sample standard "
                f"deviation over seeds; random subsets are drawn from the same {self.pool_rows:,}-row pool.")

    def plot(self, path: str | Path | None = None) -> bytes:
        """A bar chart (mean ± std per arm, the full pool as a line) as PNG bytes, also written to ``path``."""
        from ..plotting import png_bytes, pyplot

        plt = pyplot()
        arms = [arm for arm in self.runs if arm != FULL]
        means, stds = zip(*(self.summary(arm) for arm in arms))
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        colours = ["#4C72B0" if arm == CORESET else "#BBBBBB" for arm in arms]
        bars = ax.bar([self.arm_label(a) for a in arms], means, yerr=stds, capsize=6, color=colours, width=0.55)
        for bar, mean, std in zip(bars, means, stds):
            ax.annotate(f"{mean:.2f} ± {std:.2f}", (bar.get_x() + bar.get_width() / 2, mean + std),
                        xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
        top = max(m + s for m, s in zip(means, stds))
        if FULL in self.runs:
            full_mean, full_std = self.summary(FULL)
            ax.axhline(full_mean, color="#C44E52", linestyle="--", label=f"full pool: {full_mean:.2f} ± {full_std:.2f}")
            ax.axhspan(full_mean - full_std, full_mean + full_std, color="#C44E52", alpha=0.12)
            ax.legend(fontsize=8, loc="lower right")
            top = max(top, full_mean + full_std)
        ax.set_ylim(0, top * 1.18 if top > 0 else 1)
        ax.set_ylabel(f"{self.metric} (%)")
        ax.set_title(f"{self.coreset_rows:,} rows, {len(self.seeds)} seeds: {self.verdict or 'no random baseline'}",
                     fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        png = png_bytes(fig)
        if path is not None:  # replaced at once: an interrupt leaves the old file or the new one
            write_files(Path(path).parent, {Path(path).name: png})
        return png

    def files(self) -> dict[str, bytes]:
        """``report.md``, ``report.json`` and ``report.png``, rendered: ``{file name: content}``."""
        return {"report.md": self.to_markdown().encode(), "report.json": self.to_json(indent=1).encode(),
                "report.png": self.plot()}

    def save(self, folder: str | Path) -> Path:
        """Write :meth:`files` into ``folder`` (created if needed), each file replaced at once (an interrupt
        leaves the old file or the new one, never half of one); return the folder."""
        folder = Path(folder)
        write_files(folder, self.files())
        return folder
