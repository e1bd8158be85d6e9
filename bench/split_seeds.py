"""The knowledge split over many seeds: how the acceptance bars hold across splits, not on one.

One split holds out 10 % of MedQuAD's documents, and a document brings all its questions with it
(a GARD subtype can bring 20): which documents a seed holds out moves a bar by a point or two. Run
over many seeds, each bar gets its mean, its spread, the seeds under it, and the rate pooled over
every question asked, which is the best estimate of how MedBot does on held-out questions.

``manage.py evaluate --knowledge-split MEDQUAD --seeds 1-60 --only-retrieval --config extract``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from bench.knowledge_split import SplitReport


def parse_seeds(text: str) -> list[int]:
    """ "1-60", "1,2,5" or "3": the seeds, in order, each once. ValueError for anything else."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"--seeds takes numbers and ranges such as 1-60 or 1,2,5; got {text!r}")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise ValueError(f"--seeds: {part.strip()} runs backwards")
        seeds += [seed for seed in range(low, high + 1) if seed not in seeds]
    return seeds


def _counts(value: Any) -> tuple[float, float] | None:
    """(hits, n) of a rate, or (count, 1) of a count such as answers with absent names."""
    if isinstance(value, dict):
        return (value["hits"], value["n"]) if value.get("n") else None
    return None if value is None else (float(value), 1.0)


def summarise_seeds(reports: Sequence[SplitReport]) -> dict[str, Any]:
    """Per configuration and acceptance bar: each seed's value, the mean, the lowest and highest,
    the seeds where the bar fails, a 95 % interval for the mean over seeds, and the rate pooled over
    all their questions."""
    bars: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for report in reports:
        seed = report.meta["seed"]
        for outcome in report.outcomes:
            for check in outcome.bars:
                key = (outcome.config, check["group"], check["metric"], check["bar"])
                entry = bars.setdefault(key, {"values": {}, "failed": [], "hits": 0.0, "n": 0.0, "rate": True})
                if check["value"] is None:
                    continue
                entry["values"][seed] = check["value"]
                if check["holds"] is False:
                    entry["failed"].append(seed)
                counts = _counts(outcome.summary[check["group"]][check["metric"]])
                if counts is not None:
                    entry["hits"] += counts[0]
                    entry["n"] += counts[1]
                    entry["rate"] = entry["rate"] and isinstance(outcome.summary[check["group"]][check["metric"]], dict)
    rows = []
    for (config, group, metric, bar), entry in bars.items():
        values = list(entry["values"].values())
        if not values:
            continue
        mean = statistics.fmean(values)
        half = 1.96 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
        pooled = entry["hits"] / entry["n"] if entry["rate"] and entry["n"] else entry["hits"]
        rows.append(
            {
                "config": config,
                "group": group,
                "metric": metric,
                "bar": bar,
                "seeds": len(values),
                "mean": round(mean, 4),
                "ci95": [round(mean - half, 4), round(mean + half, 4)] if half is not None else None,
                "min": round(min(values), 4),
                "max": round(max(values), 4),
                "pooled": round(pooled, 4),
                "seeds_failing": sorted(entry["failed"]),
                "values": {str(seed): value for seed, value in sorted(entry["values"].items())},
            }
        )
    return {"seeds": sorted(report.meta["seed"] for report in reports), "bars": rows}


def _shown(value: float, metric: str) -> str:
    return f"{value:g}" if metric == "answers_with_missing_names" else f"{100 * value:.1f} %"


def render_seeds(summary: dict[str, Any]) -> Iterable[str]:
    """A plain table, one line per configuration and bar."""
    yield f"{len(summary['seeds'])} seeds: {summary['seeds'][0]}..{summary['seeds'][-1]}" if summary["seeds"] else ""
    yield (
        f"{'config':<9} {'group':<10} {'metric':<28} {'bar':<7} {'pooled':>8} {'mean':>8} "
        f"{'95% CI of mean':>17} {'min':>8} {'failing seeds':>14}"
    )
    for row in summary["bars"]:
        ci = (
            "–"
            if row["ci95"] is None
            else f"{_shown(row['ci95'][0], row['metric'])}–{_shown(row['ci95'][1], row['metric'])}"
        )
        yield (
            f"{row['config']:<9} {row['group']:<10} {row['metric']:<28} {row['bar']:<7} "
            f"{_shown(row['pooled'], row['metric']):>8} {_shown(row['mean'], row['metric']):>8} {ci:>17} "
            f"{_shown(row['min'], row['metric']):>8} {len(row['seeds_failing']):>5} of {row['seeds']:<5}"
        )
