"""Turn an `Analysis` into report blocks, then into Markdown and self-contained HTML.

The report is built once as a list of blocks (heading, paragraph, list, table, figure) so the
Markdown and the HTML always say the same thing. HTML inlines figures as base64 PNGs so the file
can be mailed or attached to a paper review on its own.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

import pandas as pd

from analysis import plots
from analysis.summary import Analysis

#: The Markdown per-item table lists at most this many items (items.csv has all of them).
MAX_ITEM_ROWS = 60


@dataclass(frozen=True)
class Block:
    kind: str  # "h2", "h3", "p", "list", "table", "figure"
    content: object
    name: str = ""  # figure file name


def fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}"


def fmt_rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def fmt_num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def fmt_ci(ci: list[float] | None, pct: bool = True) -> str:
    if not ci:
        return "n/a"
    return f"[{ci[0]:.1%}, {ci[1]:.1%}]" if pct else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _headline_rows(s: dict) -> list[tuple[str, str]]:
    b, it, tw, pos, ag = s["binomial"], s["items"], s["two_way_bootstrap"], s["position"], s["agreement"]
    return [
        ("comparison votes (decided)", f"{s['n_votes']} ({b['n']})"),
        ("raters x items", f"{s['n_raters']} x {s['n_items']}"),
        ("proposed preferred", fmt_rate(s["proposed_rate"])),
        ("binomial p (two-sided / greater)", f"{fmt_p(b['p_two_sided'])} / {fmt_p(b['p_greater'])}"),
        ("exact (Clopper-Pearson) interval", fmt_ci(b["ci_exact"])),
        ("Wilson interval", fmt_ci(b["ci_wilson"])),
        ("items won / decided (ties)", f"{it['won']} / {it['won'] + it['lost']} ({it['ties']})"),
        ("item-level binomial p (two-sided)", fmt_p(it["p_two_sided"])),
        ("**two-way rater x item bootstrap interval (primary)**", fmt_ci(tw["ci"])),
        ("item-only bootstrap interval", fmt_ci(s["item_bootstrap"]["ci"])),
        ("left chosen (p)", f"{fmt_rate(pos['left_rate'])} ({fmt_p(pos['p_two_sided'])})"),
        (
            "Fleiss' kappa / Krippendorff's alpha",
            f"{fmt_num(ag['fleiss_kappa'])} / {fmt_num(ag['krippendorff_alpha'])}",
        ),
    ]


def build_blocks(analysis: Analysis) -> list[Block]:
    """The whole report, top to bottom."""
    s = analysis.summary
    if analysis.votes is None:  # distinction answers only
        return distinction_only_blocks(s)
    study = s["study"]
    proposed, baseline = study["proposed"], study["baseline"]
    blocks: list[Block] = [
        Block(
            "p",
            f"Study **{study['name']}** from {study['source']}: proposed method **{proposed}** vs "
            f"baseline **{baseline}**.",
        ),
        Block("h2", "Conclusion"),
        Block("p", s["conclusion"]),
    ]
    if s["warnings"]:
        blocks += [Block("h3", "Warnings"), Block("list", s["warnings"])]

    main = dict(_headline_rows(s))
    without = dict(_headline_rows(s["without_exclusions"]))
    blocks += [
        Block("h2", "Main results, with and without exclusions"),
        Block(
            "table",
            pd.DataFrame(
                {
                    "statistic": list(main),
                    "with exclusions": list(main.values()),
                    "all votes": [without[k] for k in main],
                }
            ),
        ),
        Block(
            "p",
            "How to read this: the *pooled binomial test* treats every vote as independent; votes share "
            "raters and items, so its p-value and intervals are too optimistic. The *two-way bootstrap* "
            "resamples raters and items together and is the primary result; the *item level* (the paper's "
            "Table 2) counts each item once by its majority. Agreement near 0 means raters disagree "
            "about which map is better even when the average favours one.",
        ),
    ]

    ex = s["exclusions"]
    blocks += [
        Block("h2", "Exclusions"),
        Block(
            "p",
            f"{ex['votes_excluded']} of {ex['votes_before']} votes and {ex['raters_excluded']} of "
            f"{ex['raters_before']} raters excluded. Rules: "
            + ", ".join(f"{k} = {v}" for k, v in ex["rules"].items())
            + ".",
        ),
        Block(
            "table",
            pd.DataFrame([{k: st[k] for k in ("rule", "detail", "raters", "votes")} for st in ex["steps"]])
            if ex["steps"]
            else pd.DataFrame({"rule": ["(none)"]}),
        ),
    ]

    b = s["binomial"]
    blocks += [
        Block("h2", "Vote level"),
        Block(
            "p",
            f"{proposed} was chosen in {b['k']} of {b['n']} decided votes ({fmt_rate(s['proposed_rate'])}); "
            f"exact binomial test against 50%: two-sided p = {fmt_p(b['p_two_sided'])}, one-sided "
            f"(greater) p = {fmt_p(b['p_greater'])}; 95% Clopper-Pearson {fmt_ci(b['ci_exact'])}, "
            f"Wilson {fmt_ci(b['ci_wilson'])}. {b['no_preference']} 'no preference' vote(s) not counted.",
        ),
    ]

    it = s["items"]
    items = analysis.items
    shown = (
        items
        if len(items) <= MAX_ITEM_ROWS
        else items.sort_values("rate").iloc[
            list(range(MAX_ITEM_ROWS // 2)) + list(range(len(items) - MAX_ITEM_ROWS // 2, len(items)))
        ]
    )
    item_rows = pd.DataFrame(
        {
            "item": shown["item"],
            "label": shown["label"],
            "votes": shown["n"],
            f"{proposed}": shown["k"],
            "rate": shown["rate"].map(lambda x: fmt_rate(None if pd.isna(x) else x)),
            "Wilson 95%": [
                fmt_ci(None if pd.isna(lo) else [lo, hi]) for lo, hi in zip(shown["ci_low"], shown["ci_high"])
            ],
            "outcome": shown["outcome"],
        }
    )
    blocks += [
        Block("h2", "Item level (Table 2)"),
        Block(
            "p",
            f"The majority preferred {proposed} on {it['won']} of {it['total']} items ({it['ties']} tied, "
            f"{it['lost']} lost); exact binomial test over the {it['won'] + it['lost']} decided items: "
            f"two-sided p = {fmt_p(it['p_two_sided'])}, one-sided p = {fmt_p(it['p_greater'])}.",
        ),
        Block("figure", plots.item_preference_plot(items, s["proposed_rate"], proposed), "items.png"),
        Block("table", item_rows),
    ]
    if len(items) > MAX_ITEM_ROWS:
        blocks.append(
            Block(
                "p",
                f"Showing the {MAX_ITEM_ROWS // 2} least and most preferred of {len(items)} items; "
                "items.csv lists all.",
            )
        )

    tw, mm = s["two_way_bootstrap"], s["mixed_model"]
    rows = [
        {
            "analysis": "pooled binomial (naive)",
            "estimate": fmt_rate(s["proposed_rate"]),
            "95% interval": fmt_ci(b["ci_exact"]),
            "p (rate = 50%)": fmt_p(b["p_two_sided"]),
        },
        {
            "analysis": "two-way bootstrap (primary)",
            "estimate": fmt_rate(tw["estimate"]),
            "95% interval": fmt_ci(tw["ci"]),
            "p (rate = 50%)": "-",
        },
        {
            "analysis": "item-only bootstrap",
            "estimate": fmt_rate(s["item_bootstrap"]["estimate"]),
            "95% interval": fmt_ci(s["item_bootstrap"]["ci"]),
            "p (rate = 50%)": "-",
        },
    ]
    lin, bay = mm["linear"], mm["bayes"]
    if lin.get("fitted"):
        rows.append(
            {
                "analysis": "MixedLM, linear probability, crossed rater + item",
                "estimate": fmt_rate(lin["estimate"]),
                "95% interval": fmt_ci(lin["ci"]),
                "p (rate = 50%)": fmt_p(lin["p_two_sided"]),
            }
        )
    if bay.get("fitted"):
        rows.append(
            {
                "analysis": "Bayesian logit GLMM (VB), typical rater & item",
                "estimate": fmt_rate(bay["typical_rate"]),
                "95% interval": fmt_ci(bay["typical_rate_ci"]),
                "p (rate = 50%)": "-",
            }
        )
    blocks += [
        Block("h2", "Crossed design (raters x items)"),
        Block("table", pd.DataFrame(rows)),
        Block(
            "p",
            "The two-way bootstrap draws raters and items with replacement at the same time "
            f"({tw['replicates']} replicates). The mixed models are cross-checks: MixedLM treats the 0/1 "
            "vote as a linear outcome; the Bayesian logit model is fitted by variational Bayes, estimates "
            "the rate for a typical rater on a typical item, and its interval is too narrow.",
        ),
    ]
    notes = [
        f"{name}: {m['reason']}"
        for name, m in (("MixedLM", lin), ("Bayesian GLMM", bay))
        if not m.get("fitted")
    ]
    if lin.get("fitted"):
        notes.append(
            f"MixedLM variance components: rater {lin['rater_var']:.4f}, item {lin['item_var']:.4f}, "
            f"residual {lin['residual_var']:.4f}."
        )
    if bay.get("fitted"):
        notes.append(
            f"Bayesian GLMM standard deviations (log-odds): rater {bay['rater_sd']:.2f}, item {bay['item_sd']:.2f}."
        )
    if notes:
        blocks.append(Block("list", notes))

    blocks += [
        Block("h2", "Raters"),
        Block("figure", plots.rater_distribution_plot(analysis.raters, proposed), "raters.png"),
    ]

    pos = s["position"]
    side = pos["by_side"]
    side_text = ""
    if "difference" in side:
        side_text = (
            f" With side as a covariate: {proposed} was preferred {fmt_rate(side['proposed_left']['rate'])} "
            f"of the time when shown left and {fmt_rate(side['proposed_right']['rate'])} when shown right "
            f"(Fisher p = {fmt_p(side['fisher_p'])})."
        )
    blocks += [
        Block("h2", "Position bias"),
        Block(
            "p",
            f"The left map was chosen in {fmt_rate(pos['left_rate'])} of decided votes (binomial p = "
            f"{fmt_p(pos['p_two_sided'])}).{side_text} Flag rule: {pos['rule']}.",
        ),
        Block(
            "figure",
            plots.position_plot(analysis.raters, pos["left_rate"], s["options"]["side_threshold"]),
            "position.png",
        ),
    ]
    if pos["flagged_raters"]:
        blocks.append(Block("table", pd.DataFrame(pos["flagged_raters"])))

    ag, rt = s["agreement"], s["test_retest"]
    ci = ag.get("ci", {})
    blocks += [
        Block("h2", "Agreement"),
        Block(
            "table",
            pd.DataFrame(
                [
                    {
                        "measure": "observed agreement",
                        "value": fmt_num(ag["observed"]),
                        "95% item bootstrap": fmt_ci(ci.get("observed"), False),
                    },
                    {
                        "measure": "Fleiss' kappa",
                        "value": fmt_num(ag["fleiss_kappa"]),
                        "95% item bootstrap": fmt_ci(ci.get("fleiss_kappa"), False),
                    },
                    {
                        "measure": "Krippendorff's alpha (nominal)",
                        "value": fmt_num(ag["krippendorff_alpha"]),
                        "95% item bootstrap": fmt_ci(ci.get("krippendorff_alpha"), False),
                    },
                ]
            ),
        ),
        Block(
            "p",
            f"Answers coded as the method chosen ({', '.join(ag['categories'])}), first showings only. "
            + (ag.get("note", "") + " " if ag.get("note") else "")
            + (
                f"Test-retest: {rt['pairs']} repeated (rater, item) pairs, same method chosen "
                f"{fmt_rate(rt['same_method'])} {fmt_ci(rt.get('ci_wilson'))}"
                + (f", same side {fmt_rate(rt['same_side'])}" if rt.get("same_side") is not None else "")
                + "."
                if rt["pairs"]
                else "No item was shown twice to the same rater (no test-retest)."
            ),
        ),
    ]

    if "methods" in s:
        m = s["methods"]
        wins = pd.DataFrame(m["wins"]).T
        wins.index.name = "winner \\ loser"
        blocks += [
            Block("h2", "All methods"),
            Block("p", "Win matrix (row chosen over column):"),
            Block("table", wins.reset_index()),
            Block("figure", plots.bradley_terry_plot(m["bradley_terry"]), "bradley_terry.png"),
            Block(
                "table",
                pd.DataFrame(
                    [
                        {
                            "a": t["a"],
                            "b": t["b"],
                            "a wins / n": f"{t['a_wins']} / {t['n']}",
                            "a rate": fmt_rate(t["a_rate"]),
                            "two-way 95%": fmt_ci(t["ci_two_way"]),
                            "p": fmt_p(t["p_two_sided"]),
                            "p (Holm)": fmt_p(t.get("p_holm")),
                        }
                        for t in m["pairwise"]
                    ]
                ),
            ),
        ]

    if "metrics" in s:
        mt = s["metrics"]
        blocks += [
            Block("h2", "Automatic metrics vs people"),
            Block(
                "p",
                f"Spearman correlation over {mt['items_matched']} items between the share of votes for "
                f"{proposed} and the metric difference {proposed} - {baseline}. For lower-is-better metrics "
                "a negative rho means agreement with people.",
            ),
            Block(
                "table",
                pd.DataFrame(
                    [
                        {
                            "metric": c["metric"],
                            "items": c["items"],
                            "rho": fmt_num(c["rho"]),
                            "p": fmt_p(c["p_value"]),
                            "lower is better": c["lower_is_better"],
                            "mean difference": fmt_num(mt["mean_difference"].get(c["metric"]), 4),
                        }
                        for c in mt["correlations"]
                    ]
                ),
            ),
        ]
    if "distinction" in s:
        blocks += distinction_blocks(s["distinction"])
    return blocks


def distinction_only_blocks(s: dict) -> list[Block]:
    """The report of a study without pairwise votes: a note, then the distinction section."""
    study = s["study"]
    blocks = [
        Block(
            "p",
            f"Study **{study['name']}** from {study['source']}: distinction task with method(s) "
            f"{', '.join(f'**{m}**' for m in study['methods'])}. {s['pairwise']['skipped'].capitalize()}: the pairwise "
            "sections (preference rate, items won, position bias, agreement) are skipped.",
        ),
        Block("h2", "Conclusion"),
        Block("p", s["conclusion"]),
    ]
    if s["warnings"]:
        blocks += [Block("h3", "Warnings"), Block("list", s["warnings"])]
    return blocks + distinction_blocks(s["distinction"], with_conclusion=False)


def distinction_blocks(d: dict, with_conclusion: bool = True) -> list[Block]:
    """The "Distinction task" section: accuracy per method, differences, calibration, runner-up
    (`with_conclusion` repeats its conclusion, which a distinction-only report shows at the top)."""
    methods = d["methods"]
    blocks = [
        Block("h2", "Distinction task"),
        Block(
            "p",
            "Each rater saw one image with the maps of one method for the model's top-4 classes and picked "
            "the map of the model's actual prediction (chance: 25 %), then rated their confidence (1-5). "
            "Raters are nested in methods, items crossed with methods."
            + (" " + d["conclusion"] if with_conclusion else ""),
        ),
        Block(
            "table",
            pd.DataFrame(
                [
                    {
                        "method": m,
                        "answers": r["n_answers"],
                        "raters x items": f"{r['n_raters']} x {r['n_items']}",
                        "accuracy": fmt_rate(r["accuracy"]),
                        "binomial p vs 25 % (greater / two-sided)": f"{fmt_p(r['p_greater'])} / {fmt_p(r['p_two_sided'])}",
                        "Clopper-Pearson": fmt_ci(r["ci_exact"]),
                        "two-way bootstrap (primary)": fmt_ci(r["ci_bootstrap"]),
                        "all answers (no exclusions)": fmt_rate(d["without_exclusions"]["methods"].get(m, {}).get("accuracy")),
                    }
                    for m, r in methods.items()
                ]
            ),
        ),
        Block("figure", plots.distinction_plot(d), "distinction.png"),
    ]
    if d["differences"]:
        mm = d["mixed_model"]
        mixed = {(x["a"], x["b"]): x for x in mm.get("differences", [])}
        blocks += [
            Block("h3", "Differences between methods"),
            Block(
                "table",
                pd.DataFrame(
                    [
                        {
                            "difference": f"{x['a']} - {x['b']}",
                            "estimate": f"{100 * x['estimate']:+.1f} points",
                            "bootstrap: items shared, raters within method (primary)": fmt_ci(x["ci_bootstrap"]),
                            "items only (ignores raters)": fmt_ci(x["ci_items_only"]),
                            "Wald (answers independent)": fmt_ci(x["ci_naive"]),
                            "MixedLM": fmt_ci(mixed[(x["a"], x["b"])]["ci"]) if (x["a"], x["b"]) in mixed else "n/a",
                        }
                        for x in d["differences"]
                    ]
                ),
            ),
            Block(
                "p",
                "The primary interval draws items once for both methods (every image was shown under both) and "
                "raters within each method (different people). The items-only and Wald intervals ignore that "
                "answers cluster within raters and are too narrow when raters differ. "
                + (f"MixedLM: {mm['reason']}." if not mm.get("fitted") else
                   f"MixedLM variance components: rater {mm['rater_var']:.4f}, item {mm['item_var']:.4f}, "
                   f"item x method {mm['item_method_var']:.4f}, residual {mm['residual_var']:.4f}."),
            ),
        ]
    cal = d["calibration"]
    hl, slope, mc = cal["high_minus_low"], cal["slope"], cal["mean_confidence"]
    level_rows = []
    for row in cal["levels"]:
        entry = {"confidence": row["confidence"], "answers": row["n"], "accuracy (all)": fmt_rate(row["accuracy"]),
                 "Clopper-Pearson": fmt_ci(row["ci_exact"])}
        for m in methods:
            at = next(r for r in cal["by_method"][m] if r["confidence"] == row["confidence"])
            entry[m] = f"{fmt_rate(at['accuracy'])} ({at['n']})"
        level_rows.append(entry)
    slope_text = (
        f"Logistic slope {slope['log_odds_per_level']:+.2f} log-odds per confidence step "
        f"(rater-clustered 95 % {fmt_ci(slope['ci'], False)}, p = {fmt_p(slope['p_two_sided'])})."
        if slope.get("fitted") else f"Logistic slope: {slope['reason']}."
    )
    blocks += [
        Block("h3", "Confidence calibration"),
        Block("table", pd.DataFrame(level_rows)),
        Block(
            "p",
            "High (4-5) minus low (1-2) confidence accuracy: "
            + (f"{100 * hl['estimate']:+.1f} points, two-way {fmt_ci(hl['ci_bootstrap'])}. " if hl["estimate"] is not None else "n/a. ")
            + slope_text
            + f" Mean confidence when correct {fmt_num(mc['correct'], 2)}, when wrong {fmt_num(mc['wrong'], 2)}"
            + (f"; {cal['missing']} answer(s) without confidence." if cal["missing"] else "."),
        ),
    ]
    ru = d["runner_up"]
    blocks += [
        Block("h3", "Confusion with the runner-up class"),
        Block(
            "table",
            pd.DataFrame(
                [
                    {
                        "method": name,
                        "wrong answers": r["wrong"],
                        "on rank 2": r["runner_up"],
                        "share": fmt_rate(r["share"]),
                        "two-way bootstrap": fmt_ci(r["ci_bootstrap"]),
                        "binomial p vs 1/3": fmt_p(r["p_two_sided"]),
                        "answers by rank 1/2/3/4": "/".join(str(r["by_rank"][k]) for k in ("1", "2", "3", "4")),
                    }
                    for name, r in [("all", ru["all"]), *ru["methods"].items()]
                ]
            ),
        ),
        Block(
            "p",
            "If wrong picks were random among the three wrong maps, a third would fall on the runner-up; "
            "a larger share means the maps of the top-2 classes look alike to people.",
        ),
    ]
    ex = d["exclusions"]
    design = d["design"]
    blocks += [
        Block("h3", "Distinction answers: design and exclusions"),
        Block(
            "p",
            f"{ex['votes_excluded']} of {ex['votes_before']} answers and {ex['raters_excluded']} of "
            f"{ex['raters_before']} raters excluded (same rules as the pairwise votes; an attention check is "
            f"failed when the obvious map is not chosen). Raters per method: "
            + ", ".join(f"{m} {n}" for m, n in design["raters_per_method"].items())
            + f"; raters nested in methods: {design['raters_nested_in_methods']}; every item under every "
            f"method: {design['items_crossed_with_methods']}; attention checks {design['attention_checks']} "
            f"({design['failed_checks']} failed); repeats {design['repeats']} (not analysed).",
        ),
        Block(
            "table",
            pd.DataFrame([{k: st[k] for k in ("rule", "detail", "raters", "votes")} for st in ex["steps"]])
            .rename(columns={"votes": "answers"})
            if ex["steps"]
            else pd.DataFrame({"rule": ["(none)"]}),
        ),
    ]
    return blocks


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block], title: str, figure_dir: str = "figures") -> str:
    """Markdown with figures referenced as files under `figure_dir`."""
    lines = [f"# {title}", ""]
    for block in blocks:
        if block.kind in ("h2", "h3"):
            lines += [("## " if block.kind == "h2" else "### ") + str(block.content), ""]
        elif block.kind == "p":
            lines += [str(block.content), ""]
        elif block.kind == "list":
            lines += [f"- {item}" for item in block.content] + [""]
        elif block.kind == "table":
            frame: pd.DataFrame = block.content
            lines.append("| " + " | ".join(_md_cell(c) for c in frame.columns) + " |")
            lines.append("|" + "---|" * len(frame.columns))
            lines += [
                "| " + " | ".join(_md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
            ]
            lines.append("")
        elif block.kind == "figure":
            lines += [f"![{block.name}]({figure_dir}/{block.name})", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escape, then turn **bold** and *italic* (the only markup the blocks use) into tags."""
    import re

    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"\*(.+?)\*", r"<em>\1</em>", escaped)


_STYLE = """body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}
th{background:#f3f3f3}img{max-width:100%}li{margin:0.2em 0}h2{border-bottom:1px solid #ddd;padding-bottom:0.2em}"""


def to_html(blocks: list[Block], title: str) -> str:
    """One self-contained HTML page: styles inline, figures as base64 data URIs."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for block in blocks:
        if block.kind in ("h2", "h3"):
            parts.append(f"<{block.kind}>{_inline(str(block.content))}</{block.kind}>")
        elif block.kind == "p":
            parts.append(f"<p>{_inline(str(block.content))}</p>")
        elif block.kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline(str(i))}</li>" for i in block.content) + "</ul>")
        elif block.kind == "table":
            frame = block.content
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline(str(v))}</td>" for v in row) + "</tr>"
                for row in frame.itertuples(index=False)
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif block.kind == "figure":
            data = base64.b64encode(block.content).decode("ascii")
            parts.append(f'<p><img alt="{html.escape(block.name)}" src="data:image/png;base64,{data}"></p>')
    parts.append("</body></html>")
    return "\n".join(parts)
