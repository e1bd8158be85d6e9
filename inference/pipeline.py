"""inference.answer: a question and its history in, a safe answer out, whatever the model's state.

clean input → emergency triage (stop there) → best curated entry (grounding and fallback)
→ the model if it is ready → quality gate → trim → the active disclaimer.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.cache import cache

from inference import triage, versions
from inference.engine import GenerationError, GenerationRequest, GenerationStats, get_manager
from inference.models import Disclaimer, EmergencyRule, FallbackRule
from inference.prompting import Turn
from inference.retrieval import RuleMatch, rule_index
from inference.text import clean_input, quality_problem, strip_template_markers, trim_to_sentences

logger = logging.getLogger(__name__)

MODEL, RULE, EMERGENCY, UNAVAILABLE = "model", "rule", "emergency", "unavailable"

NO_RELIABLE_ANSWER = (
    "I don't have a reliable answer to that question. For advice about your own health, please "
    "talk to a doctor, nurse or pharmacist. If it feels urgent, call {number}."
)
FALLBACK_DISCLAIMER = (
    "MedBot gives general health information, not medical advice or a diagnosis. In an emergency, call {number}."
)


@dataclass
class AnswerResult:
    """What the pipeline returns: the answer and everything needed to store and explain it."""

    text: str
    source: str
    disclaimer: str
    matched_rule: str = ""
    rule_score: float | None = None
    adapter_version: str = ""
    latency_ms: int = 0
    tokens: int = 0
    cached: bool = False
    partial: bool = False
    fallback_reason: str = ""

    @property
    def full_text(self) -> str:
        return f"{self.text}\n\n{self.disclaimer}"


# --- curated data, cached per process and refreshed when its version changes -------------------


class _Curated:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules_version: str | None = None
        self._disclaimer_version: str | None = None
        self.emergency: list[triage.CompiledEmergencyRule] = []
        self.disclaimer_text = ""

    def refresh(self) -> None:
        rules_version = versions.current(versions.RULES)
        disclaimer_version = versions.current(versions.DISCLAIMER)
        with self._lock:
            if rules_version != self._rules_version or rules_version == "unknown":
                self.emergency = triage.compile_rules(EmergencyRule.objects.filter(enabled=True))
                self._rules_version = rules_version
            if disclaimer_version != self._disclaimer_version or disclaimer_version == "unknown":
                active = Disclaimer.objects.filter(active=True).values_list("text", flat=True).first()
                self.disclaimer_text = active or FALLBACK_DISCLAIMER.format(number=settings.MEDBOT_EMERGENCY_NUMBER)
                self._disclaimer_version = disclaimer_version


curated = _Curated()


def check_emergency(question: str) -> triage.CompiledEmergencyRule | None:
    curated.refresh()
    return triage.find_emergency(question, curated.emergency)


def best_rule(question: str) -> RuleMatch | None:
    return rule_index.best(question, settings.MEDBOT_RULE_MIN_SCORE)


# --- the answer cache ---------------------------------------------------------------------------


def _cache_key(question: str, adapter_version: str) -> str:
    parts = [
        " ".join(question.lower().split()),
        adapter_version,
        versions.current(versions.RULES),
        versions.current(versions.DISCLAIMER),
        settings.MEDBOT_BASE_MODEL,
        str(settings.MEDBOT_MAX_NEW_TOKENS),
        str(settings.MEDBOT_TEMPERATURE),
    ]
    return "medbot:answer:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _cache_get(key: str) -> AnswerResult | None:
    try:
        stored = cache.get(key)
    except Exception:
        logger.warning("Answer cache unreachable", exc_info=True)
        return None
    return AnswerResult(**stored) if stored else None


def _cache_set(key: str, result: AnswerResult) -> None:
    try:
        cache.set(key, asdict(result), settings.MEDBOT_ANSWER_CACHE_SECONDS)
    except Exception:
        logger.warning("Answer cache unreachable", exc_info=True)


# --- the flow ---------------------------------------------------------------------------------


def stream_answer(
    question: str, history: Sequence[Turn] = (), cancel: threading.Event | None = None
) -> Iterator[str | AnswerResult]:
    """Yield the model's text pieces as they are produced, then one final AnswerResult.

    Only model text comes as pieces; emergency, rule and cached answers come whole in the result.
    The final result is the truth: it may differ from the concatenated pieces when the quality
    gate replaced the model's text or an unfinished sentence was trimmed."""
    started = time.monotonic()
    question = clean_input(question)
    curated.refresh()
    disclaimer = curated.disclaimer_text

    def done(result: AnswerResult) -> AnswerResult:
        result.latency_ms = int((time.monotonic() - started) * 1000)
        return result

    emergency = triage.find_emergency(question, curated.emergency)
    if emergency is not None:
        if emergency.rule_id:
            EmergencyRule.count_hit(emergency.rule_id)
        text = triage.render_response(emergency, settings.MEDBOT_EMERGENCY_NUMBER, settings.MEDBOT_CRISIS_LINE)
        yield done(AnswerResult(text=text, source=EMERGENCY, disclaimer=disclaimer, matched_rule=emergency.name))
        return

    match = best_rule(question)
    engine = get_manager().get()
    adapter_version = engine.version if engine is not None else ""
    cache_key = None
    if not history and settings.MEDBOT_ANSWER_CACHE_SECONDS > 0:
        cache_key = _cache_key(question, adapter_version or "rules")
        cached = _cache_get(cache_key)
        if cached is not None:
            cached.cached = True
            if cached.matched_rule and match is not None:
                FallbackRule.count_hit(match.rule_id)
            yield done(cached)
            return

    def from_rules(reason: str) -> AnswerResult:
        if match is None:
            text = NO_RELIABLE_ANSWER.format(number=settings.MEDBOT_EMERGENCY_NUMBER)
            return AnswerResult(text=text, source=UNAVAILABLE, disclaimer=disclaimer, fallback_reason=reason)
        return AnswerResult(
            text=match.answer,
            source=RULE,
            disclaimer=disclaimer,
            matched_rule=match.title,
            rule_score=round(match.score, 3),
            fallback_reason=reason,
        )

    result: AnswerResult | None = None
    if engine is not None:
        request = GenerationRequest(
            question=question,
            history=history,
            grounding=match.answer if match and settings.MEDBOT_GROUNDING else None,
            max_new_tokens=settings.MEDBOT_MAX_NEW_TOKENS,
            temperature=settings.MEDBOT_TEMPERATURE,
            timeout=settings.MEDBOT_GENERATION_TIMEOUT,
            cancel=cancel or threading.Event(),
        )
        stats = GenerationStats()
        pieces: list[str] = []
        try:
            for piece in engine.stream(request, stats):
                pieces.append(piece)
                yield piece
        except Exception as error:  # GenerationError, or anything a broken engine raises
            logger.warning(
                "Model failed, answering from the rules: %s", error, exc_info=not isinstance(error, GenerationError)
            )
            result = from_rules(f"model error: {error}")
        else:
            text = trim_to_sentences(strip_template_markers("".join(pieces)))
            cancelled = stats.stopped_by == "cancelled"
            problem = None if cancelled else quality_problem(text, question)
            if problem:
                logger.info("Model answer failed the quality gate (%s); using the rules", problem)
                result = from_rules(f"quality gate: {problem}")
            else:
                result = AnswerResult(
                    text=text if not cancelled else "".join(pieces).strip(),
                    source=MODEL,
                    disclaimer=disclaimer,
                    matched_rule=match.title if match else "",
                    rule_score=round(match.score, 3) if match else None,
                    tokens=stats.tokens,
                    partial=cancelled,
                    fallback_reason="timeout" if stats.stopped_by == "timeout" else "",
                )
        result.adapter_version = adapter_version
    else:
        state = get_manager().state
        result = from_rules(f"model {state}")

    if match is not None and result.matched_rule:
        FallbackRule.count_hit(match.rule_id)
    result = done(result)
    # Passing trouble (a model error, a timeout, a cut-off stream) is not cached: next time may do better.
    transient = (
        result.partial or result.fallback_reason.startswith("model error") or result.fallback_reason == "timeout"
    )
    if cache_key is not None and not transient:
        _cache_set(cache_key, result)
    yield result


def answer(question: str, history: Sequence[Turn] = ()) -> AnswerResult:
    """The whole answer at once. Never raises for model trouble: the rules answer instead."""
    final = None
    for item in stream_answer(question, history):
        if isinstance(item, AnswerResult):
            final = item
    assert final is not None
    return final
