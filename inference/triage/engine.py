"""Red-flag rules over concepts: which rule, if any, a message fires. Pure Python, no database.

``Triage.from_rows`` takes concept and rule rows (model instances, or any objects with the same
attributes, e.g. read from the fixtures) and compiles them once; ``Triage.decide`` reads one message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from inference.triage.matcher import (
    ConditionError,
    Expr,
    Matcher,
    Reading,
    compile_concept,
    condition_names,
    evaluate,
    parse_condition,
)
from inference.triage.text import normalise

logger = logging.getLogger("inference.triage")

EMERGENCY = "emergency"
URGENT = "urgent"
ROUTINE = "routine"
LEVELS = (EMERGENCY, URGENT, ROUTINE)


@dataclass(frozen=True)
class CompiledRule:
    rule_id: int | None
    name: str
    level: str
    response: str
    priority: int
    expression: Expr | None
    patterns: tuple[re.Pattern[str], ...] = ()
    # A rule about intent (self-harm) fires even in a message worded as a question.
    speaks_to_intent: bool = False


@dataclass(frozen=True)
class Decision:
    """The rules' verdict on one message: the level, the rule that set it (None for routine)."""

    level: str
    rule: CompiledRule | None
    reading: Reading


def _field(row: Any, name: str, default: Any = "") -> Any:
    value = getattr(row, name, default)
    return default if value is None else value


def compile_rule(row: Any, intent_concepts: set[str], known: set[str]) -> CompiledRule | None:
    """One rule row, or None (with a warning) when it is disabled or has nothing usable to match."""
    if not _field(row, "enabled", True):
        return None
    rule_id = _field(row, "pk", None)
    if rule_id is None:
        rule_id = _field(row, "id", None)
    name = _field(row, "name")
    expression = None
    condition = str(_field(row, "condition", "")).strip()
    if condition:
        try:
            expression = parse_condition(condition)
        except ConditionError as error:
            logger.warning("Triage rule %r (id %s): cannot read the condition: %s", name, rule_id, error)
        else:
            unknown = condition_names(expression) - known
            if unknown:
                # Treated as absent rather than dropping the rule: the other branches still work.
                logger.warning("Triage rule %r (id %s): unknown concepts %s", name, rule_id, ", ".join(sorted(unknown)))
    patterns: list[re.Pattern[str]] = []
    for line in str(_field(row, "patterns", "")).splitlines():
        source = line.strip()
        if not source:
            continue
        try:
            patterns.append(re.compile(source, re.IGNORECASE))
        except re.error as error:
            logger.warning("Triage rule %r (id %s): skipping invalid pattern %r: %s", name, rule_id, source, error)
    if expression is None and not patterns:
        logger.warning("Triage rule %r (id %s) has no valid condition or pattern; skipping it", name, rule_id)
        return None
    level = _field(row, "level", EMERGENCY) or EMERGENCY
    return CompiledRule(
        rule_id=rule_id,
        name=name,
        level=level if level in (EMERGENCY, URGENT) else EMERGENCY,
        response=_field(row, "response"),
        priority=int(_field(row, "priority", 0) or 0),
        expression=expression,
        patterns=tuple(patterns),
        speaks_to_intent=bool(expression is not None and condition_names(expression) & intent_concepts),
    )


class Triage:
    """Compiled concepts and rules. Immutable once built; one per process, rebuilt on a version change."""

    def __init__(self, matcher: Matcher, rules: list[CompiledRule]) -> None:
        self.matcher = matcher
        # Emergencies first, then by priority; equal priorities keep name order.
        self.rules = sorted(rules, key=lambda rule: (rule.level != EMERGENCY, -rule.priority, rule.name))

    @classmethod
    def from_rows(cls, concepts: Iterable[Any], rules: Iterable[Any], known_words: Iterable[str] = ()) -> Triage:
        compiled = [
            compile_concept(
                _field(row, "name"), _field(row, "kind", "symptom"), _field(row, "synonyms"), _field(row, "ranges")
            )
            for row in concepts
            if _field(row, "enabled", True)
        ]
        known = {concept.name for concept in compiled}
        intent = {concept.name for concept in compiled if concept.kind == "intent"}
        compiled_rules = [rule for row in rules if (rule := compile_rule(row, intent, known)) is not None]
        return cls(Matcher(compiled, known_words), compiled_rules)

    def decide(self, text: str) -> Decision:
        reading = self.matcher.read(text)
        normalised = None
        for rule in self.rules:
            if reading.about and not rule.speaks_to_intent:
                continue
            fired = rule.expression is not None and evaluate(rule.expression, reading.present | reading.context)
            if not fired and rule.patterns:
                normalised = normalised if normalised is not None else normalise(text)
                fired = any(pattern.search(normalised) for pattern in rule.patterns)
            if fired:
                return Decision(rule.level, rule, reading)
        return Decision(ROUTINE, None, reading)
