"""Do automatic CAM metrics agree with people? Per-item Spearman correlation.

For each item: the human preference (share of decided votes for the proposed map) against the
metric difference proposed - baseline, from the metrics CSV of `python -m cams.metrics`
(columns at least `item, method, <metric columns>`). For metrics where lower is better
(e.g. deletion_auc, entropy) expect a negative correlation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from analysis.load import VotesError

#: Metrics whose smaller values mean a better map; the report says which direction agrees with people.
LOWER_IS_BETTER = frozenset({"deletion_auc", "entropy"})


def load_metrics(path: str | Path) -> pd.DataFrame:
    """Read a metrics CSV, checking the `item` and `method` columns and at least one numeric metric."""
    path = Path(path)
    if not path.is_file():
        raise VotesError(f"metrics CSV {path} does not exist; write one with `python -m cams.metrics`")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise VotesError(f"metrics CSV {path} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in ("item", "method") if c not in frame]
    if missing:
        raise VotesError(
            f"metrics CSV {path} lacks column(s) {', '.join(missing)}; it needs item, method "
            "and one column per metric (e.g. pointing_game, energy_in_mask)"
        )
    frame["item"] = frame["item"].astype(str).str.strip()
    frame["method"] = frame["method"].astype(str).str.strip()
    if not metric_columns(frame):
        raise VotesError(f"metrics CSV {path} has no numeric metric column besides item and method")
    return frame


def metric_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c for c in frame.columns if c not in ("item", "method") and pd.api.types.is_numeric_dtype(frame[c])
    ]


def metric_correlations(
    item_table: pd.DataFrame, metrics: pd.DataFrame, proposed: str, baseline: str
) -> dict:
    """Spearman correlation of per-item human preference with each metric's proposed - baseline difference.

    `item_table` is `analysis.items.per_item_table`. Several rows per (item, method) (e.g. seeds) are
    averaged. Raises `VotesError` when the metrics name other methods or share no item with the votes.
    """
    methods = set(metrics["method"])
    absent = [m for m in (proposed, baseline) if m not in methods]
    if absent:
        raise VotesError(
            f"metrics CSV has no rows for method(s) {', '.join(absent)} (it has {', '.join(sorted(methods))}); "
            "the method names don't match the study"
        )
    columns = metric_columns(metrics)
    means = metrics[metrics["method"].isin([proposed, baseline])].groupby(["item", "method"])[columns].mean()
    diff = means.xs(proposed, level="method") - means.xs(baseline, level="method")
    human = item_table.set_index("item")["rate"].dropna()
    shared = human.index.intersection(diff.index)
    if shared.empty:
        raise VotesError(
            "metrics CSV shares no item id with the votes (e.g. votes have "
            f"{', '.join(map(str, human.index[:3]))}; metrics have {', '.join(map(str, diff.index[:3]))})"
        )
    results = []
    for column in columns:
        pairs = pd.DataFrame({"human": human[shared], "diff": diff.loc[shared, column]}).dropna()
        entry = {
            "metric": column,
            "items": int(len(pairs)),
            "rho": None,
            "p_value": None,
            "lower_is_better": column in LOWER_IS_BETTER,
        }
        if len(pairs) >= 3 and pairs["human"].nunique() > 1 and pairs["diff"].nunique() > 1:
            result = stats.spearmanr(pairs["human"], pairs["diff"])
            entry["rho"], entry["p_value"] = float(result.statistic), float(result.pvalue)
        else:
            entry["note"] = "needs >= 3 items with varying preference and metric difference"
        results.append(entry)
    return {
        "items_matched": int(len(shared)),
        "items_in_votes": int(len(human)),
        "correlations": results,
        "mean_difference": {
            c: (None if np.isnan(v) else float(v)) for c, v in diff.loc[shared].mean().items()
        },
    }
