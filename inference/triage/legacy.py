"""The pre-``assess`` API, kept until ``inference.pipeline`` calls ``assess`` itself.

``find_emergency`` now answers with ``assess`` (concepts, rules and the classifier); the ``rules`` it is
handed only supply the returned object, so callers keep working unchanged. Urgent results are not
emergencies and come back as None here. Remove this module once nothing imports it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("inference.triage")


@dataclass(frozen=True)
class CompiledEmergencyRule:
    rule_id: int | None
    name: str
    response: str
    priority: int
    patterns: tuple[re.Pattern[str], ...] = ()


def compile_rules(rules: Iterable[Any]) -> list[CompiledEmergencyRule]:
    """Enabled emergency-level rules as ``CompiledEmergencyRule``, highest priority first."""
    compiled: list[CompiledEmergencyRule] = []
    for rule in rules:
        if not getattr(rule, "enabled", True) or (getattr(rule, "level", "emergency") or "emergency") != "emergency":
            continue
        rule_id = getattr(rule, "pk", None)
        if rule_id is None:
            rule_id = getattr(rule, "id", None)
        patterns = []
        for line in str(getattr(rule, "patterns", "") or "").splitlines():
            if line.strip():
                try:
                    patterns.append(re.compile(line.strip(), re.IGNORECASE))
                except re.error as error:
                    logger.warning("Emergency rule %r: skipping invalid pattern %r: %s", rule.name, line, error)
        compiled.append(
            CompiledEmergencyRule(rule_id, rule.name, rule.response, int(getattr(rule, "priority", 0)), tuple(patterns))
        )
    compiled.sort(key=lambda rule: (-rule.priority, rule.name))
    return compiled


def find_emergency(text: str, rules: Sequence[CompiledEmergencyRule] = ()) -> CompiledEmergencyRule | None:
    """The emergency ``assess`` finds in ``text`` as a ``CompiledEmergencyRule``, or None.

    Counts no hit (the old callers count their own). A classifier-only emergency comes back with
    ``rule_id`` None, an empty name and the generic emergency text."""
    from inference.triage import GENERIC_EMERGENCY, assess

    result = assess(text, count_hits=False)
    if result.level != "emergency":
        return None
    if not result.rule:
        return CompiledEmergencyRule(None, "", GENERIC_EMERGENCY, 0)
    for rule in rules:
        if rule.name == result.rule:
            return rule
    from inference.triage import compiled

    for rule in compiled.get().rules:
        if rule.name == result.rule:
            return CompiledEmergencyRule(rule.rule_id, rule.name, rule.response, rule.priority)
    return CompiledEmergencyRule(None, result.rule, GENERIC_EMERGENCY, 0)


def render_response(rule: CompiledEmergencyRule, number: str, crisis_line: str) -> str:
    """The rule's emergency text with the local emergency number and crisis line filled in."""
    # str.replace rather than str.format: curated text may contain other braces.
    return rule.response.replace("{number}", number).replace("{crisis_line}", crisis_line)
