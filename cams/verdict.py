"""Which of two methods wins on a metric: the one verdict every report uses (metrics.md, cams.compare's
pooled column, and the yes/no rule of `cams.decision_rule`).

From the estimate of the paired difference first − second (mean and 95% CI):

- "n/a": no item has both values (the metric cannot be computed: no mask, no checkpoint);
- "too few items": values, but too few for a CI (a single item);
- the better method's name: the CI excludes 0, and the sign says which is better given the metric's
  direction (`Metric.higher_is_better`);
- "no clear difference": the CI includes 0.
"""

from __future__ import annotations

import math

from cams.metrics import Metric, get_metric
from cams.stats import Estimate

NOT_COMPUTABLE = "n/a"
TOO_FEW_ITEMS = "too few items"
NO_CLEAR_DIFFERENCE = "no clear difference"


def verdict(difference: Estimate, metric: Metric | str, first: str, second: str) -> str:
    """`first`, `second`, or one of the three phrases above, for `difference` = first − second."""
    metric = get_metric(metric) if isinstance(metric, str) else metric
    if difference.n == 0:
        return NOT_COMPUTABLE
    if not (math.isfinite(difference.low) and math.isfinite(difference.high)):
        return TOO_FEW_ITEMS
    if difference.low > 0 or difference.high < 0:
        return first if (difference.mean > 0) == metric.higher_is_better else second
    return NO_CLEAR_DIFFERENCE
