"""Mixed models with crossed random effects for rater and item (statsmodels), as a cross-check.

Two models, each with a known limit (see docs/analysis.md):
- `MixedLM` on the 0/1 outcome (a linear probability model): one group holding every vote, rater and
  item as variance components. Its intercept estimates the population-average rate, like the pooled
  and bootstrap estimates, with a Wald interval that accounts for both variance components. But the
  errors are not normal, variance estimates can sit on the boundary (0), and the interval is
  symmetric and may leave [0, 1].
- `BinomialBayesMixedGLM` (logit link): the right likelihood, but fitted by variational Bayes. Its
  intercept is the log-odds for a *typical* rater on a *typical* item (not the population average),
  its posterior standard deviations are known to be too small, and the answer depends on the priors.
Side (proposed shown left, coded +-0.5) is a covariate in both, so the intercept is side-balanced.
The two-way bootstrap (`analysis.crossed`) stays the primary crossed-design result.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy import stats

T = TypeVar("T")


def _design(comparisons: pd.DataFrame) -> pd.DataFrame:
    data = comparisons.loc[comparisons["y"].notna(), ["rater", "item", "y", "proposed_left"]].copy()
    data["side"] = np.where(data["proposed_left"], 0.5, -0.5)
    data["one"] = 1
    data["rater"] = data["rater"].astype(str)
    data["item"] = data["item"].astype(str)
    return data.reset_index(drop=True)


def _skip(reason: str) -> dict:
    return {"fitted": False, "reason": reason}


class FitFailed(ValueError):
    """A model fit that failed numerically; the message says which model and why (for summary.json)."""


def fit_recording_warnings(fit: Callable[[], T], model: str) -> tuple[T, list[str]]:
    """Runs ``fit`` with every warning recorded instead of printed: the report lists the first lines of
    at most five (convergence notes matter to a reader), and a numerical failure becomes
    :class:`FitFailed` ("MixedLM failed: ...") so the caller can skip the model with a reason."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fit()
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise FitFailed(f"{model} failed: {exc}") from None
    return result, sorted({str(w.message).splitlines()[0] for w in caught})[:5]


def fit_linear_mixed(comparisons: pd.DataFrame, confidence: float = 0.95) -> dict:
    """MixedLM (REML) of y ~ side with crossed rater and item variance components.

    Returns `estimate` (intercept = side-balanced population rate), `ci` (Wald), `p_two_sided`
    (Wald test of rate 0.5), `side_effect` (proposed rate shown left minus shown right) with its p,
    the variance components `rater_var`, `item_var`, `residual_var`, and `converged`.
    """
    import statsmodels.formula.api as smf

    data = _design(comparisons)
    if data["rater"].nunique() < 2 or data["item"].nunique() < 2:
        return _skip("needs at least two raters and two items")
    if data["y"].nunique() < 2:
        return _skip("every vote went the same way: no variance to model")
    formula = "y ~ side" if data["side"].nunique() > 1 else "y ~ 1"
    model = smf.mixedlm(
        formula,
        data,
        groups="one",
        re_formula="0",
        vc_formula={"rater": "0 + C(rater)", "item": "0 + C(item)"},
        use_sparse=True,
    )
    try:
        result, notes = fit_recording_warnings(lambda: model.fit(reml=True, method=["lbfgs"]), "MixedLM")
    except FitFailed as exc:
        return _skip(str(exc))
    z = stats.norm.ppf(0.5 + confidence / 2)
    est, se = float(result.fe_params["Intercept"]), float(result.bse_fe["Intercept"])
    vcomp = dict(zip(model.exog_vc.names, np.asarray(result.vcomp, dtype=float)))
    out = {
        "fitted": True,
        "model": "MixedLM (linear probability, REML, crossed variance components)",
        "estimate": est,
        "se": se,
        "ci": [est - z * se, est + z * se],
        "p_two_sided": float(2 * stats.norm.sf(abs(est - 0.5) / se)) if se > 0 else None,
        "rater_var": float(vcomp.get("rater", np.nan)),
        "item_var": float(vcomp.get("item", np.nan)),
        "residual_var": float(result.scale),
        "converged": bool(result.converged),
        "warnings": notes,
    }
    if "side" in result.fe_params:
        side, side_se = float(result.fe_params["side"]), float(result.bse_fe["side"])
        out["side_effect"] = side
        out["side_p"] = float(2 * stats.norm.sf(abs(side) / side_se)) if side_se > 0 else None
    return out


def fit_bayes_logit(comparisons: pd.DataFrame, confidence: float = 0.95, seed: int = 0) -> dict:
    """BinomialBayesMixedGLM (variational Bayes) of y ~ side with crossed rater and item effects.

    Returns the intercept log-odds (`log_odds`, posterior `sd`), `typical_rate` =
    logistic(intercept) with an approximate interval, the posterior mean `rater_sd`/`item_sd`, and
    `side_log_odds`. Intervals are normal approximations to a VB posterior: too narrow, a cross-check only.
    """
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    data = _design(comparisons)
    if data["rater"].nunique() < 2 or data["item"].nunique() < 2:
        return _skip("needs at least two raters and two items")
    if data["y"].nunique() < 2:
        return _skip("every vote went the same way: the logit model has no finite estimate")
    formula = "y ~ side" if data["side"].nunique() > 1 else "y ~ 1"
    model = BinomialBayesMixedGLM.from_formula(
        formula, {"rater": "0 + C(rater)", "item": "0 + C(item)"}, data
    )
    np.random.seed(seed)  # fit_vb starts from a fixed point, but keep any randomness reproducible
    try:
        result, notes = fit_recording_warnings(model.fit_vb, "BinomialBayesMixedGLM")
    except FitFailed as exc:
        return _skip(str(exc))
    z = stats.norm.ppf(0.5 + confidence / 2)
    names = list(model.exog_names)
    mean, sd = np.asarray(result.fe_mean), np.asarray(result.fe_sd)
    i = names.index("Intercept")
    vc_names = list(model.vcp_names)
    vc_sd = np.exp(np.asarray(result.vcp_mean))  # vcp are log standard deviations
    logistic = lambda x: float(1 / (1 + np.exp(-x)))  # noqa: E731
    out = {
        "fitted": True,
        "model": "BinomialBayesMixedGLM (logit, variational Bayes, crossed random effects)",
        "log_odds": float(mean[i]),
        "sd": float(sd[i]),
        "typical_rate": logistic(mean[i]),
        "typical_rate_ci": [logistic(mean[i] - z * sd[i]), logistic(mean[i] + z * sd[i])],
        "rater_sd": float(vc_sd[vc_names.index("rater")]),
        "item_sd": float(vc_sd[vc_names.index("item")]),
        "warnings": notes,
    }
    if "side" in names:
        out["side_log_odds"] = float(mean[names.index("side")])
    return out


def fit_mixed_models(comparisons: pd.DataFrame, confidence: float = 0.95, max_votes: int = 20000) -> dict:
    """Both models, or a note why they were skipped (too many votes: they scale badly; see docs)."""
    n = int(comparisons["y"].notna().sum())
    if n > max_votes:
        reason = f"skipped: {n} votes > --mixed-max-votes {max_votes} (mixed models scale badly; the bootstrap does not)"
        return {"linear": _skip(reason), "bayes": _skip(reason)}
    return {
        "linear": fit_linear_mixed(comparisons, confidence),
        "bayes": fit_bayes_logit(comparisons, confidence),
    }
