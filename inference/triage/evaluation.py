"""Scoring triage on a labelled set: recall and false alarms, per kind, and what the rules and the
classifier each add. Used by ``bench/triage_eval.py`` and ``manage.py triage_classifier``."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.triage import classifier
from inference.triage.corpus import Example
from inference.triage.engine import EMERGENCY, ROUTINE, URGENT, Triage


@dataclass(frozen=True)
class Judged:
    example: Example
    rules_level: str
    rule: str
    probability: float | None
    about: bool
    classifier_says: bool
    level: str  # rules and classifier together, as ``assess`` combines them


def load_jsonl(path: Path) -> list[Example]:
    examples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            examples.append(Example(row["text"], row["level"], row.get("kind", "")))
    return examples


def judge(examples: Iterable[Example], triage: Triage, probability: Any | None) -> list[Judged]:
    """Run every example through the rules and (when ``probability`` is given) the classifier."""
    from inference.triage import combine

    judged = []
    for example in examples:
        decision = triage.decide(example.text)
        p = probability(example.text) if probability is not None else None
        says = classifier.raises(decision.reading, p)
        level = combine(decision, p).level  # as served: rules, classifier and a bare cry for help
        judged.append(
            Judged(
                example=example,
                rules_level=decision.level,
                rule=decision.rule.name if decision.rule else "",
                probability=p,
                about=decision.reading.about,
                classifier_says=says,
                level=level,
            )
        )
    return judged


@dataclass
class Score:
    hits: int = 0
    n: int = 0

    @property
    def rate(self) -> float | None:
        return round(self.hits / self.n, 3) if self.n else None

    def __str__(self) -> str:
        return f"{self.rate:.3f} ({self.hits}/{self.n})" if self.n else "n/a"


@dataclass
class Report:
    name: str
    recall: dict[str, Score] = field(default_factory=dict)  # "rules", "classifier", "combined"
    false_alarms: dict[str, Score] = field(default_factory=dict)  # over routine examples
    urgent_caught: Score = field(default_factory=Score)  # urgent examples given urgent or emergency
    urgent_as_emergency: Score = field(default_factory=Score)
    routine_as_urgent: Score = field(default_factory=Score)
    only_rules: int = 0
    only_classifier: int = 0
    per_kind: dict[str, dict[str, Score]] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def score(value: Score) -> dict[str, Any]:
            return {"rate": value.rate, "hits": value.hits, "n": value.n}

        return {
            "name": self.name,
            "emergency_recall": {key: score(value) for key, value in self.recall.items()},
            "false_alarms_on_routine": {key: score(value) for key, value in self.false_alarms.items()},
            "urgent_caught_as_urgent_or_emergency": score(self.urgent_caught),
            "urgent_raised_to_emergency": score(self.urgent_as_emergency),
            "routine_given_urgent": score(self.routine_as_urgent),
            "emergencies_caught_only_by_rules": self.only_rules,
            "emergencies_caught_only_by_classifier": self.only_classifier,
            "per_kind": {
                kind: {key: score(value) for key, value in scores.items()} for kind, scores in self.per_kind.items()
            },
            "misses": self.misses,
            "false_alarms": self.alarms,
        }


def report(name: str, judged: Sequence[Judged]) -> Report:
    result = Report(name)
    for key in ("rules", "classifier", "combined"):
        result.recall[key] = Score()
        result.false_alarms[key] = Score()
    per_kind: dict[str, dict[str, Score]] = defaultdict(
        lambda: {"rules": Score(), "combined": Score(), "false_alarms": Score()}
    )
    for item in judged:
        example = item.example
        classifier_says = item.classifier_says
        says = {
            "rules": item.rules_level == EMERGENCY,
            "classifier": classifier_says,
            "combined": item.level == EMERGENCY,
        }
        kind = example.kind or "-"
        if example.level == EMERGENCY:
            for key, value in says.items():
                result.recall[key].n += 1
                result.recall[key].hits += value
            per_kind[kind]["rules"].n += 1
            per_kind[kind]["rules"].hits += says["rules"]
            per_kind[kind]["combined"].n += 1
            per_kind[kind]["combined"].hits += says["combined"]
            result.only_rules += says["rules"] and not classifier_says
            result.only_classifier += classifier_says and not says["rules"]
            if not says["combined"]:
                result.misses.append(f"[{kind}] {example.text}")
        elif example.level == ROUTINE:
            for key, value in says.items():
                result.false_alarms[key].n += 1
                result.false_alarms[key].hits += value
            per_kind[kind]["false_alarms"].n += 1
            per_kind[kind]["false_alarms"].hits += says["combined"]
            result.routine_as_urgent.n += 1
            result.routine_as_urgent.hits += item.level == URGENT
            if says["combined"]:
                who = "rule " + item.rule if item.rules_level == EMERGENCY else f"classifier {item.probability:.2f}"
                result.alarms.append(f"[{kind}] {example.text} ({who})")
        elif example.level == URGENT:
            result.urgent_caught.n += 1
            result.urgent_caught.hits += item.level in (URGENT, EMERGENCY)
            result.urgent_as_emergency.n += 1
            result.urgent_as_emergency.hits += item.level == EMERGENCY
    result.per_kind = dict(sorted(per_kind.items()))
    return result


def render(report: Report) -> str:
    """A short plain-text summary."""
    lines = [
        f"== {report.name}",
        f"emergency recall: rules {report.recall['rules']}, classifier {report.recall['classifier']}, "
        f"combined {report.recall['combined']}",
        f"false alarms on routine: rules {report.false_alarms['rules']}, "
        f"classifier {report.false_alarms['classifier']}, combined {report.false_alarms['combined']}",
        f"emergencies only the rules caught: {report.only_rules}; only the classifier: {report.only_classifier}",
        f"urgent given urgent or emergency: {report.urgent_caught}; of which emergency: {report.urgent_as_emergency}",
        f"routine given an urgent banner: {report.routine_as_urgent}",
    ]
    return "\n".join(lines)
