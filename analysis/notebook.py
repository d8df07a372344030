"""Helpers for `analysis/preference_analysis.ipynb`: the notebook shows, the library computes.

The notebook's cells only call these functions, so the numbers in the notebook are exactly those of
`python -m analysis.report` (same blocks, same code), and nothing has to be kept in sync by hand.
"""

from __future__ import annotations

import os

import pandas as pd

from analysis.distinction_power import plan
from analysis.load import Votes, looks_like_db_url
from analysis.render import Block, build_blocks
from analysis.summary import Analysis
from analysis.tasks import StudyVotes, load_study

#: Environment variables that override the notebook's SOURCE / study (tests point them at generated votes).
SOURCE_VARIABLE = "VIBCAM_VOTES"
STUDY_VARIABLE = "VIBCAM_STUDY"


def resolve_source(source: str, study: str | None = None) -> tuple[str, str | None]:
    """The votes source and study to use: $VIBCAM_VOTES / $VIBCAM_STUDY win over the notebook's values.

    When $VIBCAM_VOTES replaces the source, the notebook's study goes with it (it named a study of the
    other source); only $VIBCAM_STUDY then picks one.
    """
    if os.environ.get(SOURCE_VARIABLE):
        source, study = os.environ[SOURCE_VARIABLE], os.environ.get(STUDY_VARIABLE) or None
    else:
        study = os.environ.get(STUDY_VARIABLE) or study
    if looks_like_db_url(source) and not study:
        raise ValueError(f"{source} is a database: set STUDY (or ${STUDY_VARIABLE}) to the study name")
    return source, study


def load(source: str, study: str | None = None) -> StudyVotes:
    """Load and validate one study's votes (pairwise and/or distinction answers) from a CSV path or
    database URL (after the environment overrides)."""
    source, study = resolve_source(source, study)
    return load_study(source, study)


def overview(votes: Votes | StudyVotes) -> pd.DataFrame:
    """What was loaded, before any exclusion: the pairwise votes, then the distinction answers if any."""
    if isinstance(votes, StudyVotes):
        parts = [pairwise_overview(votes.pairwise)] if votes.pairwise is not None else []
        if votes.distinction is not None:
            parts.append(distinction_overview(votes))
        return pd.concat(parts)
    return pairwise_overview(votes)


def distinction_overview(votes: StudyVotes) -> pd.DataFrame:
    """Distinction answers loaded (before exclusions): methods, answers, raters, items, checks."""
    d = votes.distinction
    f = d.frame
    return pd.DataFrame(
        {
            "": [
                "study",
                "source",
                "distinction methods",
                "distinction answers",
                "distinction raters",
                "distinction items",
                "distinction attention checks",
            ],
            "value": [
                d.study,
                d.source,
                ", ".join(d.methods),
                len(f),
                f["rater"].nunique(),
                f.loc[~f["attention_check"], "item"].nunique(),
                int(f["attention_check"].sum()),
            ],
        }
    ).set_index("")


def pairwise_overview(votes: Votes) -> pd.DataFrame:
    """Pairwise votes loaded, before any exclusion."""
    f = votes.frame
    return pd.DataFrame(
        {
            "": [
                "study",
                "source",
                "proposed",
                "baseline",
                "methods",
                "votes",
                "raters",
                "items",
                "attention checks",
                "repeats",
                "no preference",
            ],
            "value": [
                votes.study,
                votes.source,
                votes.proposed,
                votes.baseline,
                ", ".join(votes.methods),
                len(f),
                f["rater"].nunique(),
                f.loc[~f["attention_check"], "item"].nunique(),
                int(f["attention_check"].sum()),
                int((f["repeat"] > 0).sum()),
                int((~f["decisive"]).sum()),
            ],
        }
    ).set_index("")


def sections(analysis: Analysis) -> dict[str, list[Block]]:
    """The report's blocks grouped by their section heading ("" holds the blocks before the first)."""
    if "sections" in analysis.extra:  # figures are drawn once per analysis, not once per cell
        return analysis.extra["sections"]
    grouped: dict[str, list[Block]] = {"": []}
    current = ""
    for block in build_blocks(analysis):
        if block.kind == "h2":
            current = str(block.content)
            grouped[current] = []
        else:
            grouped[current].append(block)
    analysis.extra["sections"] = grouped
    return grouped


def show(analysis: Analysis, section: str) -> None:
    """Display one report section (its text, tables and figures) in the notebook."""
    from IPython.display import HTML, Image, Markdown, display

    grouped = sections(analysis)
    matches = [name for name in grouped if name and name.lower().startswith(section.lower())]
    distinction = section.lower().startswith("distinction")
    if not matches and (distinction or analysis.votes is None):
        what = "distinction answers" if distinction else "pairwise votes"
        display(Markdown(f"*This study has no {what}: section {section!r} is skipped.*"))
        return
    if not matches:
        raise KeyError(
            f"no report section starts with {section!r}; sections: {', '.join(n for n in grouped if n)}"
        )
    for block in grouped[matches[0]]:
        if block.kind == "h3":
            display(Markdown(f"### {block.content}"))
        elif block.kind == "p":
            display(Markdown(str(block.content)))
        elif block.kind == "list":
            display(Markdown("\n".join(f"- {item}" for item in block.content)))
        elif block.kind == "table":
            display(HTML(block.content.to_html(index=False)))
        elif block.kind == "figure":
            display(Image(data=block.content, format="png"))


def distinction_planning(
    analysis: Analysis,
    accuracies: tuple[float, float] = (0.5, 0.35),
    rater_sd: float = 0.5,
    item_sd: float = 1.0,
    item_method_sd: float = 0.5,
    sims: int = 30,
) -> pd.DataFrame | str:
    """Half-width of the difference's interval for this study's size and for twice the raters
    (`analysis.distinction_power.plan`, few simulations: a quick look; use the command for decisions)."""
    if "distinction" not in analysis.summary:
        return "This study has no distinction answers; see `python -m analysis.power distinction --help`."
    d = analysis.summary["distinction"]
    raters = max(2, min(r["n_raters"] for r in d["methods"].values()))
    result = plan(
        [raters, 2 * raters], [max(2, d["n_items"])], accuracies, rater_sd, item_sd, item_method_sd,
        sims=sims, replicates=100,
    )
    return pd.DataFrame(result["grid"]).set_index(["raters_per_method", "items"])
