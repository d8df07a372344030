"""Report figures as PNG bytes (matplotlib's Agg backend: no display needed, safe in servers and tests)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: Per-item plots show at most this many items (evenly spread over the sorted rates) to stay readable.
MAX_ITEMS_PLOTTED = 120



def _errors(estimate, low, high) -> np.ndarray:  # noqa: ANN001
    """Error-bar lengths for matplotlib, which refuses negative ones: a percentile bootstrap interval
    need not contain its estimate, and rounding can put it a hair outside; such a side gets length 0."""
    estimate, low, high = (np.asarray(v, dtype=float) for v in (estimate, low, high))
    return np.stack([np.clip(estimate - low, 0.0, None), np.clip(high - estimate, 0.0, None)])

def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def item_preference_plot(items: pd.DataFrame, overall: float | None, proposed: str) -> bytes:
    """Per-item preference for the proposed map with Wilson intervals, sorted, 0.5 and overall marked."""
    data = items[items["n"] > 0].sort_values("rate").reset_index(drop=True)
    note = ""
    if len(data) > MAX_ITEMS_PLOTTED:
        keep = np.unique(np.linspace(0, len(data) - 1, MAX_ITEMS_PLOTTED).round().astype(int))
        note = f" ({len(keep)} of {len(data)} items, evenly spread)"
        data = data.iloc[keep].reset_index(drop=True)
    height = min(0.22 * len(data) + 1.2, 16)
    fig, ax = plt.subplots(figsize=(6.5, max(height, 2.5)))
    y = np.arange(len(data))
    colours = np.select(
        [data["outcome"] == "won", data["outcome"] == "lost"], ["tab:green", "tab:red"], "tab:grey"
    )
    ax.errorbar(
        data["rate"],
        y,
        xerr=_errors(data["rate"], data["ci_low"], data["ci_high"]),
        fmt="none",
        ecolor="lightgrey",
        elinewidth=1.5,
    )
    ax.scatter(data["rate"], y, c=colours, s=18, zorder=3)
    ax.axvline(0.5, color="black", lw=0.8, ls="--")
    if overall is not None:
        ax.axvline(overall, color="tab:blue", lw=1, label=f"overall {overall:.1%}")
        ax.legend(loc="lower right", fontsize=8)
    if len(data) <= 40:
        ax.set_yticks(
            y,
            [
                f"{i} ({name})" if len(str(name)) < 25 else str(i)
                for i, name in zip(data["item"], data["label"])
            ],
            fontsize=7,
        )
    else:
        ax.set_yticks([])
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel(f"share of votes preferring {proposed} (Wilson 95% interval)")
    ax.set_title("Preference per item" + note, fontsize=10)
    return _png(fig)


def rater_distribution_plot(raters: pd.DataFrame, proposed: str) -> bytes:
    """Histogram of each rater's share of votes for the proposed map."""
    fig, ax = plt.subplots(figsize=(6.5, 3))
    rates = raters["proposed_rate"].dropna()
    ax.hist(rates, bins=np.linspace(0, 1, 21), color="tab:blue", alpha=0.8, edgecolor="white")
    ax.axvline(0.5, color="black", lw=0.8, ls="--")
    ax.set_xlabel(f"rater's share of votes preferring {proposed}")
    ax.set_ylabel("raters")
    ax.set_title(f"Rater distribution ({len(rates)} raters)", fontsize=10)
    return _png(fig)


def position_plot(raters: pd.DataFrame, left_rate: float | None, threshold: float) -> bytes:
    """Overall left-choice rate and the histogram of each rater's left-choice rate."""
    fig, (bar, hist) = plt.subplots(1, 2, figsize=(7.5, 3), gridspec_kw={"width_ratios": [1, 3]})
    if left_rate is not None:
        bar.bar(["left", "right"], [left_rate, 1 - left_rate], color=["tab:orange", "tab:purple"])
    bar.axhline(0.5, color="black", lw=0.8, ls="--")
    bar.set_ylim(0, 1)
    bar.set_title("Side chosen", fontsize=10)
    rates = raters["left_rate"].dropna()
    hist.hist(rates, bins=np.linspace(0, 1, 21), color="tab:orange", alpha=0.8, edgecolor="white")
    for x in (threshold, 1 - threshold):
        hist.axvline(x, color="tab:red", lw=0.8, ls=":")
    hist.set_xlabel("rater's share of left choices (dotted: one-sided flag)")
    hist.set_ylabel("raters")
    hist.set_title("Left/right per rater", fontsize=10)
    return _png(fig)


def bradley_terry_plot(strengths: list[dict]) -> bytes:
    """Bradley-Terry log-strengths with bootstrap intervals."""
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(strengths) + 1.2))
    order = sorted(strengths, key=lambda s: s["log_strength"])
    y = np.arange(len(order))
    est = np.array([s["log_strength"] for s in order])
    low = np.array([s["ci"][0] if s["ci"] else s["log_strength"] for s in order])
    high = np.array([s["ci"][1] if s["ci"] else s["log_strength"] for s in order])
    ax.errorbar(est, y, xerr=_errors(est, low, high), fmt="o", color="tab:blue", ecolor="lightgrey")
    ax.set_yticks(y, [s["method"] for s in order])
    ax.axvline(0, color="black", lw=0.8, ls="--")
    ax.set_xlabel("Bradley-Terry log-strength (mean 0), 95% two-way bootstrap interval")
    return _png(fig)


def distinction_plot(distinction: dict) -> bytes:
    """Left: each method's accuracy with its two-way interval against 25 % chance. Right: accuracy by
    confidence level per method (calibration); a rising line means confidence is informative."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    methods = list(distinction["methods"])
    acc = [distinction["methods"][m]["accuracy"] for m in methods]
    cis = [distinction["methods"][m]["ci_bootstrap"] or [a, a] for m, a in zip(methods, acc)]
    x = np.arange(len(methods))
    left.errorbar(x, acc, yerr=_errors(acc, [c[0] for c in cis], [c[1] for c in cis]), fmt="o", capsize=4)
    left.axhline(distinction["chance"], color="black", lw=0.8, ls="--", label="chance (25 %)")
    left.set_xticks(x, methods)
    left.set_xlim(-0.6, len(methods) - 0.4)
    left.set_ylim(0, 1)
    left.set_ylabel("accuracy (prediction's map chosen)")
    left.set_title("Accuracy with its two-way rater x item interval", fontsize=9)
    left.legend(fontsize=8, loc="upper right")
    for m in methods:
        rows = [r for r in distinction["calibration"]["by_method"][m] if r["n"]]
        right.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o-", label=m)
    right.axhline(distinction["chance"], color="black", lw=0.8, ls="--")
    right.set_xticks([1, 2, 3, 4, 5])
    right.set_ylim(0, 1)
    right.set_xlabel("confidence")
    right.set_title("Accuracy by confidence", fontsize=9)
    right.legend(fontsize=8, loc="lower right")
    return _png(fig)
