"""A report as JSON, Markdown, or one self-contained HTML page (inline CSS and SVG, no script)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape

from mleb.lab.aggregate import (
    NO_LEADERBOARD,
    CompetitionSummary,
    FailureCounts,
    GroupSummary,
    Report,
    SeedResult,
    SplitSummary,
)
from mleb.ranking import LeaderboardState
from mleb.splits import SPLIT_ALIASES

# Column titles for MLE-bench's percentages, any medal first as the headline.
METRIC_TITLES = {
    "any_medal_percentage": "any medal",
    "gold_medal_percentage": "gold",
    "silver_medal_percentage": "silver",
    "bronze_medal_percentage": "bronze",
    "above_median_percentage": "above median",
    "valid_submissions_percentage": "valid submission",
    "submission_exists_percentage": "submission exists",
}
COLOURS = {
    "gold": "#d4a017",
    "silver": "#9aa5b1",
    "bronze": "#b87333",
    "above median": "#3f7cac",
    "below median": "#c0504d",
    "median": "#56606b",
    NO_LEADERBOARD: "#8e6c8a",
}
THRESHOLDS = ("median", "bronze", "silver", "gold")
NOT_RECORDED = "-"
# A threshold that could not exist: the competition has no real leaderboard.
NOT_COMPUTABLE = "n/a"
LEADERBOARD_REASONS = {
    LeaderboardState.LFS_POINTER.value: "its leaderboard is a Git LFS pointer",
    LeaderboardState.MISSING.value: "its leaderboard is missing",
}


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


# Shared formatting.


def split_label(name: str) -> str:
    aliases = SPLIT_ALIASES.get(name, ())
    return f"{name} ({', '.join(aliases)})" if aliases else name


def _percent(value: float) -> str:
    return f"{value:.2f}"


def _score(value: float | None) -> str:
    return NOT_RECORDED if value is None else f"{value:.6g}"


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "",
             f"{secs}s" if secs else ""]  # fmt: skip
    return " ".join(p for p in parts if p) or "0s"


def _bytes(value: int) -> str:
    return f"{value / 2**30:.3g} GiB" if value else "default"


def _seed_label(seed: int | None) -> str:
    return "seed ?" if seed is None else f"seed {seed}"


def _result(result: SeedResult) -> str:
    score = "" if result.score is None else f" {_score(result.score)}"
    return f"{_seed_label(result.seed)}:{score} {result.outcome}"


def _direction(competition: CompetitionSummary) -> str:
    if competition.is_lower_better is None:
        return "?"
    return "lower" if competition.is_lower_better else "higher"


def _leaderboard_reason(competition: CompetitionSummary) -> str:
    return LEADERBOARD_REASONS.get(competition.leaderboard_state, "it has no leaderboard")


def _thresholds(competition: CompetitionSummary) -> list[str]:
    if not competition.has_leaderboard:
        return [NOT_COMPUTABLE] * len(THRESHOLDS)
    return [_score(getattr(competition, f"{t}_threshold")) for t in THRESHOLDS]


def _medals(competition: CompetitionSummary) -> str:
    medals = f"{competition.medals}/{len(competition.results)}"
    return medals if competition.has_leaderboard else f"{medals} ({NO_LEADERBOARD})"


def _without_leaderboard_line(competition: CompetitionSummary) -> str:
    """Per competition: medals could not be computed, why, and the fix."""
    c = competition
    results = f"{len(c.results)} result{'s' if len(c.results) != 1 else ''}"
    note = f" ({c.leaderboard_note})" if c.leaderboard_note else ""
    return (
        f"{c.competition_id}: medals could not be computed because {_leaderboard_reason(c)}, "
        f"so its {results} count as no medal and not above median{note}."
    )


def _without_leaderboard_summary(report: Report) -> str:
    """Empty when every competition run has a leaderboard."""
    missing = report.without_leaderboard
    if not missing:
        return ""
    reasons: dict[str, int] = {}
    for c in missing:
        reasons[_leaderboard_reason(c)] = reasons.get(_leaderboard_reason(c), 0) + 1
    why = "; ".join(f"{n} because {reason}" for reason, n in sorted(reasons.items()))
    return (
        f"Medals could not be computed for {len(missing)} of the {len(report.competitions)} "
        f"competitions run ({why}): without a leaderboard there are no medal or median "
        "thresholds, so every percentage below counts their results as no medal and not above "
        "median. Fix: run `git lfs pull` in the MLE-bench checkout, import those competitions "
        "again, then grade the runs again: `mleb run --resume RUN_GROUP_DIR` regrades the whole "
        "group into a new grading report without running anything that finished (see "
        "Competitions without a leaderboard)."
    )


def _spec_versions(competition: CompetitionSummary) -> str:
    return ", ".join(f"v{v}" for v in competition.grader_spec_versions) or NOT_RECORDED


def _budget_cells(group: GroupSummary) -> list[str]:
    budget = group.budget
    if budget is None:
        return [NOT_RECORDED] * 5
    return [
        _duration(budget.time_limit_s),
        str(budget.gpus),
        f"{budget.cpus:g}" if budget.cpus else "default",
        _bytes(budget.memory_bytes),
        budget.network,
    ]


def _failure_rows(report: Report) -> list[list[str]]:
    rows = [[g.name, *_failure_cells(g.failures)] for g in report.groups]
    if len(report.groups) > 1:
        rows.append(["total", *_failure_cells(report.failures)])
    return rows


def _failure_cells(counts: FailureCounts) -> list[str]:
    if not counts.runs:
        return ["no run.json"] + [""] * 5
    return [str(v) for v in (counts.runs, counts.succeeded, counts.agent_failures,
                             counts.infrastructure_failures, counts.infrastructure_retries,
                             counts.unfinished)]  # fmt: skip


_SPLIT_HEAD = ["split", "competitions (run)", "seeds", *METRIC_TITLES.values(),
               "without leaderboard"]  # fmt: skip
_COMPETITION_HEAD = ["competition", "better", "median", "bronze", "silver", "gold",
                     "results (score, outcome) per seed", "medals", "grader spec"]  # fmt: skip
_FAILURE_HEAD = ["run group", "runs", "succeeded", "agent failures", "infrastructure failures",
                 "infrastructure retries", "unfinished"]  # fmt: skip
_PROVENANCE_HEAD = ["run group", "written by mleb", "agent image", "image digests", "time limit",
                    "GPUs per run", "CPUs", "memory", "network", "grading report"]  # fmt: skip


def _split_row(split: SplitSummary) -> list[str]:
    return [
        split_label(split.split),
        f"{split.competitions} ({split.competitions_run})",
        str(split.seeds),
        *(
            f"{_percent(split.metrics[k].mean)} ± {_percent(split.metrics[k].standard_error)}"
            for k in METRIC_TITLES
        ),
        str(len(split.without_leaderboard)),
    ]


def _competition_row(competition: CompetitionSummary) -> list[str]:
    c = competition
    return [
        c.competition_id,
        _direction(c),
        *_thresholds(c),
        "; ".join(_result(r) for r in c.results),
        _medals(c),
        _spec_versions(c),
    ]


def _provenance_row(group: GroupSummary) -> list[str]:
    return [
        group.name,
        group.mleb_version or NOT_RECORDED,
        group.agent_image or NOT_RECORDED,
        ", ".join(group.image_digests) or NOT_RECORDED,
        *_budget_cells(group),
        group.grading_report,
    ]


def _pass_at_k_head(report: Report) -> list[str]:
    most = max((s.seeds for s in report.splits), default=0)
    return ["split", *(f"pass@{k}" for k in range(1, most + 1))]


def _pass_at_k_row(split: SplitSummary, width: int) -> list[str]:
    values = [_percent(split.pass_at_k[k]) for k in sorted(split.pass_at_k)]
    return [split_label(split.split), *values, *[""] * (width - 1 - len(values))]


def _summary_line(report: Report) -> str:
    groups = len(report.groups)
    return (
        f"Generated {report.generated_at} by mleb {report.mleb_version} from {groups} run "
        f"group{'s' if groups != 1 else ''}."
    )


_SPLIT_NOTE = (
    "Percentages of the split's competitions, as mean ± standard error across seeds (ddof=1; "
    "0 for one seed), computed as MLE-bench's aggregate_grading_reports.py does with "
    "--pad-missing: a seed that lacks a competition counts it as failed. Without leaderboard: "
    "competitions run whose leaderboard is missing or a Git LFS pointer; no medal or median "
    "could be computed for them, so they count as no medal and not above median."
)
_PASS_NOTE = (
    "pass@k: percentage of the split's competitions medalled in at least one of k seeds, "
    "averaged over every choice of k of the seeds."
)
_FAILURE_NOTE = (
    "From each run's run.json. Infrastructure failures are retried up to the group's limit; "
    "a run that still fails counts as failed in the medal table, like any missing result."
)


# Markdown.


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(head), line(["---"] * len(head)), *(line(r) for r in rows)])


_KNOWN_ISSUES_NOTE = (
    "These competitions have problems reported on MLE-bench (leakage or a wrong setup), so "
    "their medals are not comparable; the table gives each split without them."
)


def _known_issue_lines(report: Report) -> list[str]:
    medals = ", ".join(report.known_issue_medals) or "none"
    return [
        *(f"{c}: {', '.join(urls)}" for c, urls in report.known_issues.items()),
        f"Medals earned on them: {medals}.",
    ]


def _known_issues_markdown(report: Report) -> list[str]:
    if not report.known_issues:
        return []
    rows = [_split_row(s) for s in report.splits_without_known_issues]
    return [
        "## Competitions with known issues",
        _KNOWN_ISSUES_NOTE,
        "\n".join(f"- {line}" for line in _known_issue_lines(report)),
        _md_table(_SPLIT_HEAD, rows) if rows else "No split has a graded run without them.",
    ]


def render_markdown(report: Report) -> str:
    pass_head = _pass_at_k_head(report)
    padded = {s.split: s.padded_results for s in report.splits if s.padded_results}
    padding = "; ".join(f"{split_label(k)}: {v}" for k, v in padded.items()) or "none"
    warning = _without_leaderboard_summary(report)
    sections = [
        "# MLE-bench report",
        _summary_line(report),
        *([f"**Warning:** {warning}"] if warning else []),
        "## Medals per split",
        _md_table(_SPLIT_HEAD, [_split_row(s) for s in report.splits])
        if report.splits
        else "No split has a graded run.",
        f"{_SPLIT_NOTE} Placeholder results added: {padding}.",
        *_known_issues_markdown(report),
        "## pass@k",
        _md_table(pass_head, [_pass_at_k_row(s, len(pass_head)) for s in report.splits]),
        _PASS_NOTE,
        "## Competitions",
        _md_table(_COMPETITION_HEAD, [_competition_row(c) for c in report.competitions]),
        *(
            [
                "## Competitions without a leaderboard",
                "\n".join(f"- {_without_leaderboard_line(c)}" for c in report.without_leaderboard),
            ]
            if report.without_leaderboard
            else []
        ),
        "## Runs and failures",
        _md_table(_FAILURE_HEAD, _failure_rows(report)),
        _FAILURE_NOTE,
        "## Provenance",
        _md_table(_PROVENANCE_HEAD, [_provenance_row(g) for g in report.groups]),
    ]
    return "\n\n".join(sections) + "\n"


# HTML.

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933;
  margin: 0; background: #f5f7fa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #d9e2ec; padding-bottom: 4px; }
p.note { color: #52606d; font-size: 12.5px; margin: 6px 0; max-width: 900px; }
section.card { background: #fff; border: 1px solid #e4e7eb; border-radius: 8px; padding: 12px 16px;
  margin: 12px 0; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #eef1f4;
  vertical-align: top; }
th { background: #f0f4f8; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { white-space: nowrap; }
td.group { font-weight: 600; background: #f8fafc; padding-top: 8px; }
span.mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px;
  white-space: nowrap; }
span.chip { display: inline-block; padding: 0 6px; margin: 1px 2px; border-radius: 9px;
  font-size: 12px; color: #fff; white-space: nowrap; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
p.warn { background: #fff4e5; border: 1px solid #f0c36d; border-radius: 6px; padding: 8px 12px;
  margin: 10px 0; max-width: 1100px; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12.5px; }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 2px;
  margin-right: 5px; vertical-align: -1px; }
"""


def _html_table(
    head: Sequence[str], rows: Sequence[Sequence[str]], classes: Mapping[int, str]
) -> str:
    """Cells are already escaped HTML; `classes` styles columns by index."""
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{classes.get(i, "")}">{cell}</td>' for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _numeric(first: int, count: int) -> dict[int, str]:
    return dict.fromkeys(range(first, count), "num")


def _provenance_html(report: Report) -> str:
    """A heading row per group, since group names are too long to share a row."""
    head = "".join(f"<th>{escape(h)}</th>" for h in _PROVENANCE_HEAD[1:])
    rows = []
    for group in report.groups:
        cells = [escape(cell) for cell in _provenance_row(group)[1:]]
        cells[2] = "<br>".join(_short_digest(d) for d in group.image_digests) or cells[2]
        rows.append(
            f'<tr><td class="group" colspan="{len(cells)}">{escape(group.name)}</td></tr>'
            f"<tr>{''.join(f'<td>{c}</td>' for c in cells)}</tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _legend(names: Sequence[str]) -> str:
    items = "".join(f'<span><i style="background:{COLOURS[n]}"></i>{n}</span>' for n in names)
    return f'<div class="legend">{items}</div>'


def _short_digest(digest: str) -> str:
    """The first 12 hex digits, as docker shows them; the whole digest on hover."""
    algorithm, _, value = digest.partition(":")
    short = f"{algorithm}:{value[:12]}" if value else digest[:19]
    return f'<span class="mono" title="{escape(digest)}">{escape(short)}</span>'


def _chip(outcome: str, text: str) -> str:
    colour = COLOURS.get(outcome, "#7b8794")
    return f'<span class="chip" style="background:{colour}">{escape(text)}</span>'


def _nice_ceiling(value: float) -> float:
    """The smallest of 10, 20, 25, 50, 100 (percent) that holds value."""
    return next((c for c in (10, 20, 25, 50) if value <= c), 100)


def medal_chart(splits: Sequence[SplitSummary]) -> str:
    """Stacked gold/silver/bronze bars per split with the any-medal mean ± SEM whisker."""
    label_w, bar_w, row_h, top = 150, 760, 46, 28
    width, height = label_w + bar_w + 130, top + row_h * len(splits) + 34
    tops = [
        s.metrics["any_medal_percentage"].mean + s.metrics["any_medal_percentage"].standard_error
        for s in splits
    ]
    scale_max = _nice_ceiling(max(tops, default=0))

    def x(value: float) -> float:
        return label_w + bar_w * min(value, scale_max) / scale_max

    parts = []
    for tick in range(0, 11):
        value = scale_max * tick / 10
        parts.append(
            f'<line x1="{x(value):.1f}" y1="{top - 6}" x2="{x(value):.1f}" '
            f'y2="{height - 30}" stroke="#e4e7eb"/>'
            f'<text x="{x(value):.1f}" y="{height - 14}" font-size="11" fill="#52606d" '
            f'text-anchor="middle">{value:g}%</text>'
        )
    for row, split in enumerate(splits):
        y = top + row * row_h
        parts.append(
            f'<text x="{label_w - 10}" y="{y + 19}" font-size="13" text-anchor="end" '
            f'fill="#1f2933">{escape(split_label(split.split))}</text>'
            f'<text x="{label_w - 10}" y="{y + 34}" font-size="11" text-anchor="end" '
            f'fill="#7b8794">{split.competitions} competitions · {split.seeds} seeds</text>'
        )
        start = 0.0
        for medal in ("gold", "silver", "bronze"):
            share = split.metrics[f"{medal}_medal_percentage"].mean
            if share > 0:
                parts.append(
                    f'<rect class="bar-{medal}" x="{x(start):.1f}" y="{y + 6}" '
                    f'width="{x(start + share) - x(start):.1f}" height="26" '
                    f'fill="{COLOURS[medal]}"><title>{medal}: {_percent(share)}%</title></rect>'
                )
            start += share
        any_medal = split.metrics["any_medal_percentage"]
        low, high = (
            any_medal.mean - any_medal.standard_error,
            any_medal.mean + any_medal.standard_error,
        )
        parts.append(
            f'<line x1="{x(max(low, 0)):.1f}" y1="{y + 19}" x2="{x(high):.1f}" y2="{y + 19}" '
            f'stroke="#1f2933" stroke-width="1.5"/>'
            f'<line x1="{x(max(low, 0)):.1f}" y1="{y + 13}" x2="{x(max(low, 0)):.1f}" '
            f'y2="{y + 25}" stroke="#1f2933" stroke-width="1.5"/>'
            f'<line x1="{x(high):.1f}" y1="{y + 13}" x2="{x(high):.1f}" y2="{y + 25}" '
            f'stroke="#1f2933" stroke-width="1.5"/>'
            f'<text x="{x(high) + 8:.1f}" y="{y + 23}" font-size="12.5" fill="#1f2933">'
            f"{_percent(any_medal.mean)}% ± {_percent(any_medal.standard_error)}</text>"
        )
    return (
        f'<svg id="chart-medals" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Medal shares per split">{"".join(parts)}</svg>'
    )


def _axis_range(values: Sequence[float]) -> tuple[float, float]:
    """The values' span padded by 8%, not crossing zero when none is negative (most metrics)."""
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    return (low - pad if low - pad >= 0 or low < 0 else 0.0), high + pad


def competition_chart(competitions: Sequence[CompetitionSummary]) -> str:
    """One row per competition: its thresholds and every seed's score on a per-row scale, with
    better always to the right; scores far outside the thresholds are pinned to the edge."""
    label_w, axis_w, row_h, top = 290, 640, 44, 30
    width, height = label_w + axis_w + 200, top + row_h * len(competitions) + 12
    parts = [
        f'<text x="{label_w}" y="16" font-size="11.5" fill="#7b8794">← worse</text>'
        f'<text x="{label_w + axis_w}" y="16" font-size="11.5" fill="#7b8794" '
        f'text-anchor="end">better →</text>'
    ]
    for row, competition in enumerate(competitions):
        y = top + row * row_h
        parts.append(_competition_row_svg(competition, y, label_w, axis_w))
    return (
        f'<svg id="chart-competitions" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Each competition\'s scores against its medal thresholds">'
        f"{''.join(parts)}</svg>"
    )


# Medal zones along a competition's axis, from worse to better, and the threshold opening each.
ZONES = (
    ("below median", None, "#f1f3f5"),
    ("above median", "median", "#dce8f4"),
    ("bronze", "bronze", "#f2dfcc"),
    ("silver", "silver", "#e3e7eb"),
    ("gold", "gold", "#f8ebbf"),
)


def _competition_row_svg(c: CompetitionSummary, y: float, label_w: int, axis_w: int) -> str:
    thresholds = {t: getattr(c, f"{t}_threshold") for t in THRESHOLDS}
    known = [v for v in thresholds.values() if v is not None]
    scores = [r for r in c.results if r.score is not None]
    without = len(c.results) - len(scores)
    parts = [
        f'<g class="competition-row" data-competition="{escape(c.competition_id)}">'
        f'<text x="{label_w - 12}" y="{y + 18}" font-size="12.5" text-anchor="end" '
        f'fill="#1f2933">{escape(c.competition_id)}</text>'
        f'<text x="{label_w - 12}" y="{y + 32}" font-size="10.5" text-anchor="end" '
        f'fill="#7b8794">{_direction(c)} is better · {c.medals}/{len(c.results)} medals</text>'
    ]
    if not c.has_leaderboard:
        return _no_leaderboard_row_svg(c, scores, y, label_w, axis_w, parts)
    values = known + [r.score for r in scores]
    if not values:
        parts.append(
            f'<text x="{label_w}" y="{y + 22}" font-size="12" fill="#7b8794">'
            f"no score and no thresholds</text></g>"
        )
        return "".join(parts)
    # Keep the thresholds readable: the axis spans them plus at most twice their spread.
    spread = (max(known) - min(known)) if len(known) > 1 else 0.0
    low, high = _axis_range(values)
    if spread:
        low, high = max(low, min(known) - 2 * spread), min(high, max(known) + 2 * spread)
    flip = bool(c.is_lower_better)

    def x(value: float) -> float:
        share = (min(max(value, low), high) - low) / (high - low)
        return label_w + axis_w * (1 - share if flip else share)

    edges = [
        (x(thresholds[t]) if t else float(label_w), name, tint)
        for name, t, tint in ZONES
        if t is None or thresholds[t] is not None
    ]
    ends = [e[0] for e in edges[1:]] + [label_w + axis_w]
    for (start, name, tint), end in zip(edges, ends, strict=True):
        parts.append(
            f'<rect class="zone zone-{name.replace(" ", "-")}" x="{start:.1f}" y="{y + 12}" '
            f'width="{max(end - start, 0):.1f}" height="16" fill="{tint}"/>'
        )
    worse, better = (high, low) if flip else (low, high)
    parts.append(
        f'<text x="{label_w}" y="{y + 41}" font-size="9.5" fill="#9aa5b1">{worse:.4g}</text>'
        f'<text x="{label_w + axis_w}" y="{y + 41}" font-size="9.5" fill="#9aa5b1" '
        f'text-anchor="end">{better:.4g}</text>'
    )
    for name, value in thresholds.items():
        if value is None:
            continue
        parts.append(
            f'<line class="threshold threshold-{name}" x1="{x(value):.1f}" y1="{y + 7}" '
            f'x2="{x(value):.1f}" y2="{y + 33}" stroke="{COLOURS[name]}" stroke-width="2.5">'
            f"<title>{name} threshold: {_score(value)}</title></line>"
        )
    for result in scores:
        assert result.score is not None  # `scores` holds scored results only
        pinned = not low <= result.score <= high
        colour = COLOURS.get(result.outcome, "#7b8794")
        parts.append(
            f'<circle class="score" cx="{x(result.score):.1f}" cy="{y + 20}" r="6.5" '
            f'fill="{"#fff" if pinned else colour}" stroke="{colour if pinned else "#fff"}" '
            f'stroke-width="2" fill-opacity="0.92"><title>{_seed_label(result.seed)}: '
            f"{_score(result.score)} ({result.outcome})</title></circle>"
        )
    note = f"{without} without a valid score" if without else ""
    parts.append(
        f'<text x="{label_w + axis_w + 14}" y="{y + 24}" font-size="11" fill="#7b8794">'
        f"{escape(note)}</text></g>"
    )
    return "".join(parts)


def _no_leaderboard_row_svg(
    c: CompetitionSummary,
    scores: Sequence[SeedResult],
    y: float,
    label_w: int,
    axis_w: int,
    parts: list[str],
) -> str:
    """No zones or thresholds to draw: a neutral band, the valid scores, and why."""
    parts.append(
        f'<rect class="zone zone-no-leaderboard" x="{label_w}" y="{y + 12}" width="{axis_w}" '
        f'height="16" fill="#f3eef3"><title>{escape(c.leaderboard_note)}</title></rect>'
    )
    if scores:
        low, high = _axis_range([r.score for r in scores if r.score is not None])
        flip = bool(c.is_lower_better)
        for result in scores:
            assert result.score is not None
            share = (result.score - low) / (high - low)
            cx = label_w + axis_w * (1 - share if flip else share)
            parts.append(
                f'<circle class="score" cx="{cx:.1f}" cy="{y + 20}" r="6.5" '
                f'fill="{COLOURS[NO_LEADERBOARD]}" stroke="#fff" stroke-width="2" '
                f'fill-opacity="0.92"><title>{_seed_label(result.seed)}: '
                f"{_score(result.score)} ({escape(result.outcome)})</title></circle>"
            )
    parts.append(
        f'<text class="no-leaderboard" x="{label_w + axis_w + 14}" y="{y + 24}" font-size="11" '
        f'fill="#8e6c8a">no leaderboard: medals not computed</text></g>'
    )
    return "".join(parts)


def _split_rows_html(report: Report) -> list[list[str]]:
    return [[escape(cell) for cell in _split_row(s)] for s in report.splits]


def _competition_rows_html(report: Report) -> list[list[str]]:
    rows = []
    for c in report.competitions:
        chips = "".join(_chip(r.outcome, _result(r)) for r in c.results)
        rows.append(
            [
                escape(c.competition_id),
                _direction(c),
                *_thresholds(c),
                chips,
                escape(_medals(c)),
                escape(_spec_versions(c)),
            ]
        )
    return rows


def _without_leaderboard_html(report: Report) -> str:
    if not report.without_leaderboard:
        return ""
    items = "".join(
        f'<li data-competition="{escape(c.competition_id)}">'
        f"{escape(_without_leaderboard_line(c))}</li>"
        for c in report.without_leaderboard
    )
    return (
        '<h2 id="without-leaderboard">Competitions without a leaderboard</h2>'
        f'<section class="card"><ul>{items}</ul></section>'
    )


def _known_issues_html(report: Report) -> str:
    if not report.known_issues:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in _known_issue_lines(report))
    rows = [[escape(c) for c in _split_row(s)] for s in report.splits_without_known_issues]
    table = _html_table(_SPLIT_HEAD, rows, _numeric(1, len(_SPLIT_HEAD))) if rows else ""
    return (
        '<h2 id="known-issues">Competitions with known issues</h2>'
        f'<p class="note">{escape(_KNOWN_ISSUES_NOTE)}</p>'
        f'<section class="card"><ul>{items}</ul>{table}</section>'
    )


def render_html(report: Report) -> str:
    pass_head = _pass_at_k_head(report)
    warning = _without_leaderboard_summary(report)
    warning_html = (
        f'<p class="warn" id="no-leaderboard-warning"><strong>Warning:</strong> '
        f"{escape(warning)}</p>"
        if warning
        else ""
    )
    medals = (
        medal_chart(report.splits) + _legend(["gold", "silver", "bronze"])
        if report.splits
        else "<p>No split has a graded run.</p>"
    )
    body = f"""
<main>
<h1>MLE-bench report</h1>
<p class="note">{escape(_summary_line(report))}</p>
{warning_html}
<h2>Medals per split</h2>
<section class="card">{medals}
<p class="note">Bars: mean gold, silver and bronze shares; whisker: any medal, mean ± standard
error. {escape(_SPLIT_NOTE)}</p></section>
<section class="card">{
        _html_table(_SPLIT_HEAD, _split_rows_html(report), _numeric(1, len(_SPLIT_HEAD)))
    }</section>
<h2>pass@k</h2>
<section class="card">{
        _html_table(
            pass_head,
            [[escape(c) for c in _pass_at_k_row(s, len(pass_head))] for s in report.splits],
            _numeric(1, len(pass_head)),
        )
    }
<p class="note">{escape(_PASS_NOTE)}</p></section>
<h2>Competitions: scores against thresholds</h2>
<section class="card">{competition_chart(report.competitions)}
{_legend(["median", "bronze", "silver", "gold", "above median", "below median"])}
<p class="note">Lines: the leaderboard's thresholds; dots: one per seed, coloured by outcome
(a hollow dot lies beyond the axis). Each row has its own scale.</p></section>
<section class="card">{
        _html_table(_COMPETITION_HEAD, _competition_rows_html(report), {**_numeric(2, 6), 7: "num"})
    }</section>
{_known_issues_html(report)}
{_without_leaderboard_html(report)}
<h2>Runs and failures</h2>
<section class="card">{
        _html_table(
            _FAILURE_HEAD,
            [[escape(cell) for cell in row] for row in _failure_rows(report)],
            {0: "name", **_numeric(1, 7)},
        )
    }
<p class="note">{escape(_FAILURE_NOTE)}</p></section>
<h2>Provenance</h2>
<section class="card">{_provenance_html(report)}</section>
</main>"""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>MLE-bench report</title><style>{_CSS}</style></head><body>{body}</body></html>\n"
    )


RENDERERS = {"md": render_markdown, "json": render_json, "html": render_html}
