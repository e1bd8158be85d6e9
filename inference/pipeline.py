"""inference.answer: a question and its history in, a safe, sourced answer out, whatever the model's state.

clean input → triage (emergency: stop with the emergency text; urgent: flag the answer)
→ retrieve passages (curated entries + imported sources) → none: "no reliable answer"
→ the model, prompted with the passages, if it is ready → quality gate → faithfulness gate
→ else the passages themselves (the curated entry, or an extract) → citations → disclaimer.

The model decides how an answer is worded, never what it says: an answer it cannot support from
the passages is replaced by them. This module is the one entry point the chat app uses.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

from django.conf import settings

from inference import triage, versions
from inference.engine import GenerationError, GenerationRequest, GenerationStats, get_manager
from inference.grounding import extract, faithfulness_problems, grounding_text
from inference.models import Disclaimer, FallbackRule
from inference.prompting import Turn
from inference.retrieval import citation_for, retriever, rule_id
from inference.text import (
    asks_something,
    clean_input,
    pleasantry,
    quality_problem,
    strip_template_markers,
    trim_to_sentences,
)
from knowledge.search import Document, Hit, about_a_pet
from medbot_site import cache_guard

logger = logging.getLogger(__name__)


class Source(enum.StrEnum):
    MODEL = "model"  # the model's wording, grounded in the passages and through both gates
    EXTRACT = "extract"  # sentences of the imported passages
    RULE = "rule"  # a curated entry, in our own words
    EMERGENCY = "emergency"
    UNAVAILABLE = "unavailable"  # nothing in the knowledge base answers it


@dataclass(frozen=True)
class Stage:
    """A step of an answer under way, yielded between the pieces so people waiting see what is
    happening: ``sources`` once triage let the question through, ``writing`` when the model starts."""

    name: str


SOURCES = Stage("sources")
WRITING = Stage("writing")


class Fallback(enum.StrEnum):
    """Why the answer is not the model's. Transient reasons may go away on a retry, so answers
    given for them are never cached."""

    NONE = ""
    NO_KNOWLEDGE = "no knowledge"
    MODEL_OFF = "model off"
    MODEL_LOADING = "model loading"
    MODEL_FAILED = "model failed"  # the engine could not load
    MODEL_ERROR = "model error"  # this generation raised
    TIMEOUT = "timeout"
    QUALITY = "quality gate"
    UNFAITHFUL = "faithfulness gate"
    PLEASANTRY = "pleasantry"  # thanks, a greeting or a goodbye: MedBot's own reply, no question asked

    @property
    def transient(self) -> bool:
        return self in {Fallback.MODEL_LOADING, Fallback.MODEL_ERROR, Fallback.TIMEOUT}


NO_RELIABLE_ANSWER = (
    "I don't have a reliable answer to that question in the sources I can use. For advice about your "
    "own health, please ask a pharmacist, a nurse or your doctor. If it feels urgent, call {number}."
)
# A greeting or thanks on its own ("hi", "thanks, that really helped"): say what MedBot is for, not
# that it has no answer, and never answer the previous question again as if it were a follow-up.
GREETING_REPLY = (
    "Hello. I answer health questions from reviewed sources: ask me about a condition, a symptom, a test "
    'or a treatment, for example "how is gout treated?". For advice about your own health, please ask a '
    "pharmacist, a nurse or your doctor. In an emergency, call {number}."
)
THANKS_REPLY = (
    "You're welcome. Ask me another health question any time. For advice about your own health, please "
    "ask a pharmacist, a nurse or your doctor. In an emergency, call {number}."
)
FAREWELL_REPLY = (
    "Take care. Come back with any health question. For advice about your own health, please ask a "
    "pharmacist, a nurse or your doctor. In an emergency, call {number}."
)


def greeting_reply(message: str) -> str:
    """The reply to a message of greeting, thanks or goodbye words only ("hi", "ok thanks, that
    really helped", "bye"), unformatted; "" for any other message."""
    kind = pleasantry(message)
    return {"farewell": FAREWELL_REPLY, "thanks": THANKS_REPLY, "greeting": GREETING_REPLY}.get(kind, "")


# The same under an urgent banner: the banner is the advice, the sources add nothing to it.
URGENT_NO_KNOWLEDGE = (
    "Follow the advice above. The sources I can use have nothing more to add about your question. "
    "If it gets worse before you are seen, call {number}."
)
# The sources are about people's health: a question about someone's animal alone (``about_a_pet``)
# gets a vet too. The people to ask about your own health stay: the animal word may be misread.
ABOUT_AN_ANIMAL = " If your question is about a pet or another animal, please ask a vet."
EMERGENCY_FOR_AN_ANIMAL = " If this is about a pet or another animal, call a vet or an emergency animal clinic now."
FALLBACK_DISCLAIMER = (
    "MedBot gives general health information, not medical advice or a diagnosis. In an emergency, call {number}."
)
# How many passages ground one answer, and how much of them reaches the prompt.
PASSAGES_PER_ANSWER = 2
GROUNDING_WORDS = 150
WARM_UP_WAIT_SECONDS = 30.0  # how long the index and triage warm-up waits for the model to load
EXTRACT_WORDS = 90


@dataclass
class AnswerResult:
    """What the pipeline returns: the answer and everything needed to store and explain it."""

    text: str
    source: str
    disclaimer: str
    triage_level: str = "routine"  # "emergency", "urgent" or "routine"
    triage_note: str = ""  # the urgent banner ("see a doctor today"), shown above the answer
    citations: list[dict[str, str]] = field(default_factory=list)
    matched_rule: str = ""  # the emergency rule, or the title of the passage that answered
    adapter_version: str = ""
    latency_ms: int = 0
    tokens: int = 0
    cached: bool = False
    partial: bool = False
    fallback: str = Fallback.NONE
    unsupported: list[str] = field(default_factory=list)  # model sentences the gate refused

    @property
    def fallback_reason(self) -> Fallback:
        return Fallback(self.fallback)


# --- the active disclaimer, cached per process --------------------------------------------------


class _Disclaimers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self.text = ""

    def current(self) -> str:
        version = versions.current(versions.DISCLAIMER)
        with self._lock:
            if version != self._version or version == "unknown":
                active = Disclaimer.objects.filter(active=True).values_list("text", flat=True).first()
                self.text = active or FALLBACK_DISCLAIMER.format(number=settings.MEDBOT_EMERGENCY_NUMBER)
                self._version = version
            return self.text


disclaimers = _Disclaimers()


def current_disclaimer() -> str:
    return disclaimers.current()


def warm_up() -> threading.Thread:
    """Get this worker ready before its first question, in the background: start loading the
    model, build the knowledge index (seconds for an imported MedQuAD), and compile triage with
    its classifier. Called where a serving process starts (runserver's child, gunicorn workers)."""
    manager = get_manager()
    manager.start()

    def run() -> None:
        from django.db import connection

        try:
            # After the model: both are Python-heavy and share one interpreter lock, and until the
            # model is ready a question's answer comes from the knowledge anyway (building the
            # index on its first use if it gets there first).
            waited = time.monotonic()
            while manager.state == "loading" and time.monotonic() - waited < WARM_UP_WAIT_SECONDS:
                time.sleep(0.05)
            started = time.monotonic()
            retriever.index()
            triage.assess("warm-up", count_hits=False)
            logger.info("Knowledge index and triage ready in %.1f s", time.monotonic() - started)
        except Exception:
            logger.warning("Warm-up failed; the first question builds what it needs", exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name="medbot-warm-up", daemon=True)
    thread.start()
    return thread


def interrupted(text: str) -> AnswerResult:
    """What is kept when the client left mid-answer: the model's text so far, marked partial."""
    return AnswerResult(text=text, source=Source.MODEL, disclaimer=current_disclaimer(), partial=True)


# --- the answer cache ---------------------------------------------------------------------------


def _cache_key(question: str, adapter_version: str, use_model: bool, gate: bool) -> str:
    parts = [
        " ".join(question.lower().split()),
        adapter_version,
        retriever.version(),  # the index that answered, not the latest token: see Retriever.version
        versions.current(versions.DISCLAIMER),
        settings.MEDBOT_BASE_MODEL,
        str(settings.MEDBOT_MAX_NEW_TOKENS),
        str(settings.MEDBOT_TEMPERATURE),
        f"{use_model}:{gate}",
    ]
    return "medbot:answer:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _cache_get(key: str) -> AnswerResult | None:
    # A dead or hung cache is skipped for a back-off (and logged once), never waited on per call.
    stored = cache_guard.safe_get(key)
    return AnswerResult(**stored) if stored else None


def _cache_set(key: str, result: AnswerResult) -> None:
    cache_guard.safe_set(key, asdict(result), settings.MEDBOT_ANSWER_CACHE_SECONDS)


# --- the stages ---------------------------------------------------------------------------------


def topic_of(question: str, history: Sequence[Turn] = ()) -> str:
    """What ``question`` is about: itself, or for a follow-up that names nothing ("how is it
    treated?") or points back to someone ("what should she eat?" after "my mum has chf") the
    person's previous question with it. Only such a follow-up: "what are the symptoms of lupus?"
    after a gout question is about lupus. (``find_passages`` asks it only when the question alone
    finds nothing, and keeps only passages that say the follow-up's own words.)"""
    index = retriever.index()
    if not index.names_nothing(question) and not index.refers_back(question):
        return question
    # The last question that named its topic: "what is afib?", "is it hereditary?", "how is it
    # treated?" are all about afib. A greeting or thanks in between names nothing either.
    asked = [turn.content for turn in history if turn.role == "user"]
    previous = next((text for text in reversed(asked) if not index.names_nothing(text)), asked[-1] if asked else "")
    # The topic's names, not how the previous question asked: "how is it treated?" after "what are
    # the symptoms of asthma?" asks about treatment, and got the symptoms again.
    names = list(dict.fromkeys(name for _, _, name, _ in index.named_spans(index.respelled(previous))))
    if names:
        return "\n".join([*names, question])
    return f"{previous}\n{question}" if previous else question


def find_passages(question: str, history: Sequence[Turn] = ()) -> list[Hit]:
    """The passages that answer ``question``, or failing that its ``topic_of``: a follow-up
    gets "no reliable answer" on its own topic, never the previous question's passage."""
    hits = retriever.search(question, limit=PASSAGES_PER_ANSWER)
    if not hits and not pleasantry(question):
        topic = topic_of(question, history)
        if topic != question:
            # The follow-up's own words must be in what answers it: "help with my diet" after a
            # question on bee stings is not answered by the stings entry.
            index = retriever.index()
            own = index.own_words(question)
            hits = [hit for hit in retriever.search(topic, limit=10) if index.speaks_of(hit.document, own)]
            hits = hits[:PASSAGES_PER_ANSWER]
    return hits


def knowledge_answer(question: str, hits: Sequence[Hit], disclaimer: str, reason: Fallback) -> AnswerResult:
    """The answer straight from the knowledge: a curated entry whole, or passage sentences."""
    if not hits:
        if reply := greeting_reply(question):
            text = reply.format(number=settings.MEDBOT_EMERGENCY_NUMBER)
            return AnswerResult(
                text=text, source=Source.UNAVAILABLE, disclaimer=disclaimer, fallback=Fallback.PLEASANTRY
            )
        text = NO_RELIABLE_ANSWER.format(number=settings.MEDBOT_EMERGENCY_NUMBER)
        if about_a_pet(question):
            text += ABOUT_AN_ANIMAL
        return AnswerResult(text=text, source=Source.UNAVAILABLE, disclaimer=disclaimer, fallback=Fallback.NO_KNOWLEDGE)
    top = hits[0].document
    if rule_id(top) is not None:
        # A curated entry is written to be read as it is, whole: its checklists are questions
        # ("Face: has one side dropped?") and its advice is all of a piece, which an extract cut
        # to a word budget loses. So it answers whole whether the model could not answer or a
        # gate refused what the model wrote.
        return AnswerResult(
            text=top.text,
            source=Source.RULE,
            disclaimer=disclaimer,
            citations=[citation_for(top).as_dict()],
            matched_rule=top.title,
            fallback=reason,
        )
    documents = [hit.document for hit in hits]
    text, used = extract(question, documents, EXTRACT_WORDS)
    if not text:
        return knowledge_answer(question, [], disclaimer, Fallback.NO_KNOWLEDGE)
    return AnswerResult(
        text=text,
        source=Source.EXTRACT,
        disclaimer=disclaimer,
        citations=[citation_for(d).as_dict() for d in used],
        matched_rule=top.title,
        fallback=reason,
    )


def grounding_for(question: str, documents: Sequence[Document]) -> str:
    """The reference passages as the model sees them. Training builds its prompts with this too."""
    return grounding_text(question, documents, GROUNDING_WORDS)


@dataclass(frozen=True)
class Verdict:
    """What the gates make of a model's raw text: ``passed`` means it may be shown as final."""

    text: str  # tidied: template markers stripped, an unfinished last sentence trimmed
    problem: str | None  # the quality gate's reason (empty, repetitive, off the question...)
    unsupported: tuple[str, ...]  # sentences the passages do not support (faithfulness gate)

    @property
    def passed(self) -> bool:
        return not self.problem and not self.unsupported


def judge(question: str, raw: str, documents: Sequence[Document], gate: bool = True) -> Verdict:
    """Both gates on a finished model answer; serving and training's evaluation share it."""
    text = trim_to_sentences(strip_template_markers(raw))
    problem = quality_problem(text, question)
    if problem or not gate:
        return Verdict(text, problem, ())
    unsupported = faithfulness_problems(text, [d.text for d in documents], question, retriever.index().is_specific)
    return Verdict(text, None, tuple(check.sentence for check in unsupported))


_SENTENCE_DONE = re.compile(r"[.!?…][\"')\]]*\s|\n")


def complete_sentences_end(text: str) -> int:
    """Where the text's complete sentences end: after the last sentence mark followed by a space
    (or the last line break). What comes after may still be growing."""
    ends = [match.end() for match in _SENTENCE_DONE.finditer(text)]
    return ends[-1] if ends else 0


def model_answer(
    question: str,
    history: Sequence[Turn],
    hits: Sequence[Hit],
    engine,
    cancel: threading.Event,
    gate: bool,
    topic: str | None = None,
) -> Iterator[str | AnswerResult]:
    """Yield the model's pieces as they come, then its checked AnswerResult — or the knowledge
    answer (its extract chosen for ``topic``, see ``topic_of``) when the model fails, is cut off
    without a usable sentence, or the gates refuse it."""
    disclaimer = current_disclaimer()
    topic = topic or question
    documents = [hit.document for hit in hits]
    request = GenerationRequest(
        question=question,
        history=history,
        grounding=grounding_for(question, documents),
        max_new_tokens=settings.MEDBOT_MAX_NEW_TOKENS,
        temperature=settings.MEDBOT_TEMPERATURE,
        timeout=settings.MEDBOT_GENERATION_TIMEOUT,
        cancel=cancel,
    )
    stats = GenerationStats()
    raw = ""  # everything the model wrote
    shown = ""  # what people have seen of it: with the gate on, whole sentences it passed
    passages = [d.text for d in documents]
    stream = engine.stream(request, stats)
    try:
        for piece in stream:
            raw += piece
            if not gate:
                shown += piece
                yield piece  # the ablation: everything as it comes
                continue
            # People only ever see sentences the faithfulness gate accepted: each one is checked
            # when it is complete, and the first unsupported one ends the generation there.
            text = strip_template_markers(raw)
            fresh = text[len(shown) : complete_sentences_end(text)]
            if not fresh:
                continue
            refused = faithfulness_problems(fresh, passages, question, retriever.index().is_specific)
            if refused:
                stream.close()  # stops the generation: nobody will read the rest
                logger.info("Model answer failed the faithfulness gate mid-stream: %d sentence(s)", len(refused))
                result = knowledge_answer(topic, hits, disclaimer, Fallback.UNFAITHFUL)
                result.unsupported = [check.sentence for check in refused]
                yield result
                return
            shown += fresh
            yield fresh
    except Exception as error:  # GenerationError, or anything a broken engine raises
        logger.warning(
            "Model failed, answering from the knowledge: %s", error, exc_info=not isinstance(error, GenerationError)
        )
        yield knowledge_answer(topic, hits, disclaimer, Fallback.MODEL_ERROR)
        return

    if stats.stopped_by == "cancelled":
        yield AnswerResult(text=shown.strip(), source=Source.MODEL, disclaimer=disclaimer, partial=True)
        return
    timed_out = stats.stopped_by == "timeout"
    verdict = judge(question, raw, documents, gate)
    if verdict.problem:
        logger.info("Model answer failed the quality gate (%s)", verdict.problem)
        yield knowledge_answer(topic, hits, disclaimer, Fallback.TIMEOUT if timed_out else Fallback.QUALITY)
        return
    if verdict.unsupported:
        logger.info("Model answer failed the faithfulness gate: %d unsupported sentence(s)", len(verdict.unsupported))
        result = knowledge_answer(topic, hits, disclaimer, Fallback.UNFAITHFUL)
        result.unsupported = list(verdict.unsupported)
        yield result
        return
    # The last sentence was checked with the whole answer just now: hand it out too.
    if gate and verdict.text.startswith(shown.strip()):
        rest = verdict.text[len(shown.strip()) :]
        if rest.strip():
            yield rest.lstrip() if shown[-1:].isspace() else rest
    yield AnswerResult(
        text=verdict.text,
        source=Source.MODEL,
        disclaimer=disclaimer,
        citations=[citation_for(d).as_dict() for d in documents],
        matched_rule=documents[0].title,
        tokens=stats.tokens,
        fallback=Fallback.TIMEOUT if timed_out else Fallback.NONE,
    )


def _count_curated_hits(result: AnswerResult, hits: Sequence[Hit]) -> None:
    cited = {c["title"] for c in result.citations}
    for hit in hits:
        pk = rule_id(hit.document)
        if pk is not None and citation_for(hit.document).title in cited:
            FallbackRule.count_hit(pk)


# --- the flow -------------------------------------------------------------------------------------


def stream_answer(
    question: str,
    history: Sequence[Turn] = (),
    cancel: threading.Event | None = None,
    *,
    use_model: bool = True,
    gate: bool = True,
) -> Iterator[str | Stage | AnswerResult]:
    """Yield the model's text pieces as they are produced (with a ``Stage`` before each step),
    then one final AnswerResult.

    Only model text comes as pieces; every other answer comes whole in the result. The final
    result is the truth: it replaces the pieces when a gate refused them or an unfinished
    sentence was trimmed. ``use_model`` and ``gate`` exist for the evaluation's ablations."""
    started = time.monotonic()
    question = clean_input(question)
    disclaimer = current_disclaimer()

    def done(result: AnswerResult) -> AnswerResult:
        result.latency_ms = int((time.monotonic() - started) * 1000)
        return result

    verdict = triage.assess_in_context(question, [turn.content for turn in history if turn.role == "user"])
    if verdict.level == "emergency":
        yield done(
            AnswerResult(
                text=verdict.response + (EMERGENCY_FOR_AN_ANIMAL if about_a_pet(question) else ""),
                source=Source.EMERGENCY,
                disclaimer=disclaimer,
                triage_level=verdict.level,
                matched_rule=verdict.rule,
            )
        )
        return

    def flagged(result: AnswerResult) -> AnswerResult:
        result.triage_level, result.triage_note = verdict.level, verdict.response
        if verdict.level == "urgent" and result.source == Source.UNAVAILABLE:
            # Under the urgent banner, "I don't have a reliable answer" reads as if nothing applied.
            result.text = URGENT_NO_KNOWLEDGE.format(number=settings.MEDBOT_EMERGENCY_NUMBER)
        return done(result)

    yield SOURCES
    hits = find_passages(question, history)
    topic = topic_of(question, history) if hits and history else question  # what an extract is chosen for
    if not hits and verdict.level == "urgent" and verdict.rule and not asks_something(question):
        # Under "get checked today" a report may name no topic ("calf swollen after a long flight"):
        # the red flag it raised does ("Possible blood clot in the leg"). Not a question: "how can I
        # avoid heart disease?" is not answered by the chest pain entry.
        topic = f"What is {verdict.rule.lower()}?"  # what it is and its signs, not its prevention
        hits = retriever.search(topic, limit=PASSAGES_PER_ANSWER)
    engine = get_manager().get() if use_model and hits else None
    adapter_version = engine.version if engine is not None else ""
    cache_key = None
    if not history and settings.MEDBOT_ANSWER_CACHE_SECONDS > 0:
        cache_key = _cache_key(question, adapter_version or "knowledge", use_model, gate)
        cached = _cache_get(cache_key)
        if cached is not None:
            cached.cached = True
            _count_curated_hits(cached, hits)
            yield flagged(cached)
            return

    result: AnswerResult | None = None
    if engine is not None:
        yield WRITING
        for item in model_answer(question, history, hits, engine, cancel or threading.Event(), gate, topic):
            if isinstance(item, AnswerResult):
                result = item
            else:
                yield item
        assert result is not None
        result.adapter_version = adapter_version
    elif not hits:
        result = knowledge_answer(question, hits, disclaimer, Fallback.NO_KNOWLEDGE)
    else:
        state = get_manager().state if use_model else "off"
        reason = {"loading": Fallback.MODEL_LOADING, "failed": Fallback.MODEL_FAILED}.get(state, Fallback.MODEL_OFF)
        result = knowledge_answer(topic, hits, disclaimer, reason)

    _count_curated_hits(result, hits)
    result = flagged(result)
    # Passing trouble (a model error, a timeout, a cut-off stream) is not cached: next time may do better.
    if cache_key is not None and not result.partial and not result.fallback_reason.transient:
        _cache_set(cache_key, result)
    yield result


def answer(question: str, history: Sequence[Turn] = (), *, use_model: bool = True, gate: bool = True) -> AnswerResult:
    """The whole answer at once. Never raises for model trouble: the knowledge answers instead."""
    final = None
    for item in stream_answer(question, history, use_model=use_model, gate=gate):
        if isinstance(item, AnswerResult):
            final = item
    assert final is not None
    return final
