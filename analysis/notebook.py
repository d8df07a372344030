"""Helpers for `analysis/preference_analysis.ipynb`: the notebook shows, the library computes.

The notebook's cells only call these functions, so the numbers in the notebook are exactly those of
`python -m analysis.report` (same blocks, same code), and nothing has to be kept in sync by hand.
"""

from __future__ import annotations

import os

import pandas as pd

from analysis.load import Votes, load_votes, looks_like_db_url
from analysis.render import Block, build_blocks
from analysis.summary import Analysis

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


def load(source: str, study: str | None = None) -> Votes:
    """Load and validate votes from a CSV path or database URL (after the environment overrides)."""
    source, study = resolve_source(source, study)
    return load_votes(source, study)


def overview(votes: Votes) -> pd.DataFrame:
    """What was loaded, before any exclusion."""
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
