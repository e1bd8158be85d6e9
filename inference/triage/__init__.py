"""Emergency triage: the check that runs before any model sees a question.

``assess(text)`` says whether a message reports an emergency (answer only with the emergency text), an
urgent problem (answer normally under a "see a doctor today" banner) or nothing that needs triage.

Two opinions are combined. The rules: curated concepts (``Concept``: symptoms, signs, modifiers, people,
measurements, each as plain phrases) read with negation, tense and question-versus-report handling
(``matcher``), and red-flag rules (``EmergencyRule.condition``) that combine them. The classifier: a
small scikit-learn model trained on phrasings generated from the shipped concepts plus hand-written ones
(``classifier``), which can only raise a message to emergency. Either saying emergency is enough.

Compiled concepts and rules are cached per process and rebuilt when the ``triage`` version token changes
(model signals bump it on every save and delete), so a curator's new synonym works on the next message,
in every worker, without a restart.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.conf import settings

from inference import versions
from inference.triage.engine import EMERGENCY, LEVELS, ROUTINE, URGENT, CompiledRule, Decision, Triage
from inference.triage.legacy import CompiledEmergencyRule, compile_rules, find_emergency, render_response
from inference.triage.matcher import SOMEONE_ELSE_CONCEPTS, Reading
from inference.triage.text import normalise

__all__ = [
    "EMERGENCY",
    "LEVELS",
    "ROUTINE",
    "TRIAGE",
    "URGENT",
    "CompiledEmergencyRule",
    "Explanation",
    "TriageResult",
    "assess",
    "assess_in_context",
    "compile_rules",
    "explain",
    "find_emergency",
    "normalise",
    "render_response",
]

logger = logging.getLogger("inference.triage")

TRIAGE = "triage"  # the version token bumped when concepts or red-flag rules change
UNKNOWN_VERSION_REBUILD_S = 10.0  # with the shared cache down, how often to re-read concepts and rules
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CONCEPTS_FIXTURE = FIXTURES / "triage_concepts.json"
RULES_FIXTURE = FIXTURES / "emergency_rules.json"
KNOWN_WORDS_FROM = ("fallback_rules.json", "training_examples.json", "everyday_words.txt")

# The words a bare cry for help is made of (with at least one of the classifier's DISTRESS words).
CRY_WORDS = frozenset(
    "help helpp halp me please pls plz someone somebody anyone us i im am is sos emergency ambulance dying die "
    "call an a now quick quickly urgent need needed".split()
)
# What a classifier-only emergency answers with: no rule fired, so there is no rule text to use.
GENERIC_EMERGENCY = (
    "This may be an emergency. Call {number} now, or go to the nearest emergency department. "
    "If you are thinking about harming yourself, you can also {crisis_line}."
)
# ...and when the message is about a baby, a child, a relative, a friend or a pet, without the crisis line.
GENERIC_EMERGENCY_FOR_SOMEONE = (
    "This may be an emergency. Call {number} now, or go to the nearest emergency department."
)
# "my mum", "our dog", "his girlfriend": a message about someone else, as people name them.
SOMEONE_NAMED = re.compile(
    r"\b(my|our|his|her|their) (mum|mom|mam|mother|dad|father|husband|wife|partner|boyfriend|girlfriend|son|"
    r"daughter|brother|sister|friend|mate|nan|nana|gran|granny|grandma|grandmother|grandad|grandpa|grandfather|"
    r"aunt|auntie|uncle|cousin|neighbour|neighbor|flatmate|roommate|colleague|baby|toddler|child|kid|dog|cat|"
    r"puppy|kitten|rabbit|horse|pet)s?\b"
)


def about_someone_else(reading: Reading) -> bool:
    """Whether a message is about a baby, a child, a relative, a friend or an animal, not the writer."""
    return bool(SOMEONE_ELSE_CONCEPTS & set(reading.concepts)) or SOMEONE_NAMED.search(reading.prepared) is not None


@dataclass(frozen=True)
class TriageResult:
    level: str  # "emergency" | "urgent" | "routine"
    rule: str  # name of the red-flag rule that fired ("" if none / classifier only)
    concepts: tuple[str, ...]  # names of the concepts found in the text
    by: str  # "rules", "classifier", "both" or ""
    response: str  # emergency: the text to show; urgent: the banner; routine: ""


# What a message gets when triage itself fails.
ROUTINE_RESULT = TriageResult(level=ROUTINE, rule="", concepts=(), by="", response="")


@dataclass(frozen=True)
class Explanation:
    """Everything the admin's try page shows about one message."""

    result: TriageResult
    rule_id: int | None
    rule_level: str  # the level the rules alone gave
    prepared: str  # the text as the matcher read it
    found: tuple[tuple[str, str, str], ...]  # (concept, matched words, status) in reading order
    context: tuple[str, ...]  # context cues seen ("now", "past", "asking_about", ...)
    about: bool  # read as a question about a condition
    probability: float | None  # the classifier's probability of emergency; None when it is off
    threshold: float  # the classifier fires at this with a symptom or sign reported...
    sure: float  # ...and at this without one
    timings: dict[str, float] = field(default_factory=dict)


# --- the compiled set, per process ---------------------------------------------------------------


def rows_from_fixture(path: Path) -> list[SimpleNamespace]:
    """A fixture's rows as plain objects with the model's attributes (pk and fields)."""
    return [SimpleNamespace(pk=entry["pk"], **entry["fields"]) for entry in json.loads(path.read_text("utf-8"))]


@functools.cache
def known_words() -> frozenset[str]:
    """Ordinary English words, so typo repair leaves them alone ("heard" is not a typo of "heart"):
    every word in the curated answers and training examples that ship with MedBot, and the
    everyday words one letter from a symptom word ("paint" is not "faint")."""
    words: set[str] = set()
    for name in KNOWN_WORDS_FROM:
        try:
            text = (FIXTURES / name).read_text("utf-8").lower()
            text = "\n".join(line for line in text.splitlines() if not line.startswith("#"))  # a list's notes
            words.update(re.findall(r"[a-z]+", text))
        except OSError:
            logger.warning("Triage: cannot read %s for the known-word list", name)
    return frozenset(words)


def fixture_triage() -> Triage:
    """The shipped concepts and rules, read from the fixtures without a database."""
    return Triage.from_rows(rows_from_fixture(CONCEPTS_FIXTURE), rows_from_fixture(RULES_FIXTURE), known_words())


class _Compiled:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self.triage: Triage | None = None
        self._built_at = 0.0

    def get(self) -> Triage:
        version = versions.current(TRIAGE)
        if self.triage is not None and not self._stale(version):
            return self.triage
        with self._lock:
            if self.triage is None or self._stale(version):
                self.triage = self._build()
                self._version = version
                self._built_at = time.monotonic()
            return self.triage

    def _stale(self, version: str) -> bool:
        if version == versions.UNKNOWN:
            # The shared cache is down, so changes cannot be signalled: rebuild now and then rather than
            # on every message (a rebuild costs 100-250 ms).
            return time.monotonic() - self._built_at > UNKNOWN_VERSION_REBUILD_S
        return version != self._version

    def _build(self) -> Triage:
        from inference.models import Concept, EmergencyRule

        try:
            concepts = list(Concept.objects.filter(enabled=True))
            rules = list(EmergencyRule.objects.filter(enabled=True))
        except Exception:
            # No database (or no tables yet): triage must still work, from the shipped data.
            logger.warning("Triage: cannot read concepts and rules; using the shipped fixtures", exc_info=True)
            return fixture_triage()
        if not concepts:
            logger.warning("Triage: no concepts in the database (run load_curated_data); using the shipped concepts")
            concepts = rows_from_fixture(CONCEPTS_FIXTURE)
        return Triage.from_rows(concepts, rules, known_words())

    def reset(self) -> None:
        with self._lock:
            self._version = None
            self.triage = None
            self._built_at = 0.0


compiled = _Compiled()


# --- assess --------------------------------------------------------------------------------------


def _render(template: str) -> str:
    # str.replace rather than str.format: curated text may contain other braces.
    return template.replace("{number}", settings.MEDBOT_EMERGENCY_NUMBER).replace(
        "{crisis_line}", settings.MEDBOT_CRISIS_LINE
    )


def _classifier_probability(text: str) -> float | None:
    if not settings.MEDBOT_TRIAGE_CLASSIFIER:
        return None
    from inference.triage import classifier

    return classifier.probability(text)


def cry_for_help(reading: Reading) -> bool:
    """A message that is only a cry for help ("help!!", "please help me", "im dying", "call an ambulance").

    Nothing in it can be read, and nobody types it about a diet: it gets the emergency number whatever
    the classifier makes of two words. "help with my diet" has other words, so it is not one."""
    from inference.triage.classifier import DISTRESS

    words = set(reading.prepared.replace("|", " ").split())
    return bool(words & DISTRESS) and words <= CRY_WORDS


def combine(decision: Decision, probability: float | None) -> TriageResult:
    from inference.triage import classifier

    rule: CompiledRule | None = decision.rule
    classifier_says = classifier.raises(decision.reading, probability)
    level = decision.level
    by = "rules" if rule is not None else ""
    if level != EMERGENCY and cry_for_help(decision.reading):
        level, rule, by = EMERGENCY, None, "rules"
    if classifier_says:
        by = "both" if level == EMERGENCY else "classifier"
        if level != EMERGENCY:
            level, rule = EMERGENCY, None
    if level == EMERGENCY and rule is None:
        response = _render(GENERIC_EMERGENCY_FOR_SOMEONE if about_someone_else(decision.reading) else GENERIC_EMERGENCY)
    elif rule is not None and level in (EMERGENCY, URGENT):
        response = _render(rule.response)
    else:
        response = ""
    return TriageResult(
        level=level,
        rule=rule.name if rule is not None else "",
        concepts=decision.reading.concepts,
        by=by,
        response=response,
    )


def _decide(text: Any) -> tuple[Decision, float | None]:
    text = "" if text is None else str(text)
    text = text[: getattr(settings, "MEDBOT_MAX_QUESTION_CHARS", 4000) * 2]
    decision = compiled.get().decide(text)
    probability = _classifier_probability(text) if text.strip() else None
    return decision, probability


def _assessed(text: str) -> tuple[TriageResult, int | None]:
    """The result for one message and the id of the curated rule that gave it (None for none)."""
    decision, probability = _decide(text)
    result = combine(decision, probability)
    rule_id = decision.rule.rule_id if result.rule and decision.rule is not None else None
    return result, rule_id or None


def _count(rule_id: int | None) -> None:
    if rule_id is not None:
        from inference.models import EmergencyRule

        EmergencyRule.count_hit(rule_id)


def assess(text: str, *, count_hits: bool = True) -> TriageResult:
    """Triage one raw user message. Never raises: on an internal error it logs and answers routine.

    Counts a hit on the rule that fired (``count_hits=False`` for a curator's trial). Returns a
    ``TriageResult`` whose ``response`` is ready to show (placeholders filled from settings)."""
    return _counted(lambda: _assessed(text), count_hits)


def _counted(assessed: Callable[[], tuple[TriageResult, int | None]], count_hits: bool) -> TriageResult:
    """The result of ``assessed``, with a hit counted on its rule; routine if triage itself fails."""
    try:
        result, rule_id = assessed()
        if count_hits:
            _count(rule_id)
        return result
    except Exception:
        logger.exception("Triage failed; answering as routine")
        return ROUTINE_RESULT


# How many of the person's earlier messages triage reads with the new one.
CONTEXT_MESSAGES = 2


def assess_in_context(text: str, earlier: Sequence[str] = (), *, count_hits: bool = True) -> TriageResult:
    """``assess`` for a message in a conversation, read with the person's last few messages: a red
    flag told over several ("my baby is 7 weeks old" ... "she has a temperature of 38.4"), and a
    follow-up in the middle of an emergency ("I took a lot of paracetamol" ... "what should I do
    now?"), get the level the messages have together. Thanks or a goodbye does not bring the
    emergency text back. Counts one hit, on the rule of the result it returns."""
    return _counted(lambda: _in_context(text, earlier), count_hits)


def _in_context(text: str, earlier: Sequence[str]) -> tuple[TriageResult, int | None]:
    from inference.text import pleasantry

    alone = _assessed(text)
    recent = [message for message in earlier if message.strip()][-CONTEXT_MESSAGES:]
    if not recent or pleasantry(text):
        return alone
    together = _assessed(". ".join([*recent, text]))
    rank = {ROUTINE: 0, URGENT: 1, EMERGENCY: 2}
    if rank[together[0].level] > rank[alone[0].level]:
        logger.info("Triage: %s from the conversation's last messages", together[0].level)
        return together
    # An emergency alone, whose advice the earlier messages make more precise ("my daughter is 2", then
    # "shes just drunk some bleach": the child's rule, not the one about medicines), unless that advice
    # is about what the earlier messages said alone.
    if (
        alone[0].level == EMERGENCY
        and together[0].rule
        and together[0].rule != alone[0].rule
        and _assessed(". ".join(recent))[0].rule != together[0].rule
    ):
        return together
    return alone


def explain(text: str) -> Explanation:
    """``assess`` without counting hits, with what the try page shows: concepts, cues, the rule."""
    from inference.triage.classifier import SURE, THRESHOLD

    started = time.perf_counter()
    decision, probability = _decide(text)
    result = combine(decision, probability)
    reading: Reading = decision.reading
    return Explanation(
        result=result,
        rule_id=decision.rule.rule_id if decision.rule is not None and result.rule else None,
        rule_level=decision.level,
        prepared=reading.prepared.strip(),
        found=tuple((o.concept, o.text, o.status) for o in sorted(reading.occurrences, key=lambda o: o.start)),
        context=tuple(sorted(reading.context)),
        about=reading.about,
        probability=probability,
        threshold=THRESHOLD,
        sure=SURE,
        timings={"total_ms": (time.perf_counter() - started) * 1000},
    )
