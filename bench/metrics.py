"""Small, dependency-free pieces the evaluations share: percentiles and the report (ROUGE-L is
training.metrics', which training's own evaluation gate uses too)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from training.metrics import lcs_length, rouge_l_f1, tokenize

__all__ = ["Report", "lcs_length", "percentile", "rouge_l_f1", "tokenize"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks, as numpy's default."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Report:
    """One evaluation run: what was run, each configuration's outcome, and every answer."""

    meta: dict[str, Any]
    outcomes: list[Any]
    rows: list[Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "summary": {outcome.config: asdict(outcome) for outcome in self.outcomes},
            "rows": [asdict(row) for row in self.rows],
        }
