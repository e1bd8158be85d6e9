"""The evaluation harness: questions in, every configuration's answers scored side by side.

Each question goes through the whole answer pipeline (``inference.pipeline.answer``: cleaning,
emergency triage, retrieval, the model, the quality gate, the disclaimer), so the numbers describe
what a user would get, not what the bare model can do. Configurations switch the engine by settings
(``rules``: no model; ``base``: the base model; ``adapter``: base + the active LoRA adapter; the
``-nogrounding`` variants leave the matched curated entry out of the prompt).

Datasets: a JSONL file of ``{"question", "answer"?, "focus"?, "synonyms"?, "emergency"?}`` objects
(``bench/data/labelled_questions.jsonl`` is ours), or a MedQuAD XML folder read by path at run time
(NIH MedQuAD, CC BY 4.0; never copied into the repo, and reference answers are not written out).

Metrics are deliberately simple and cheap (see ``summarise``): they catch regressions and compare
configurations; they are not a clinical quality judgement. ``manage.py evaluate`` is the front door.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sys
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError
from django.test.utils import override_settings
from tqdm import tqdm

from inference import adapters, pipeline
from inference.engine import READY, GenerationRequest, GenerationStats, Generator, get_manager
from inference.models import EmergencyRule, FallbackRule

logger = logging.getLogger(__name__)

MEDQUAD_CREDIT = (
    "MedQuAD: Ben Abacha & Demner-Fushman, 'A question-entailment approach to question answering', "
    "BMC Bioinformatics 2019 (CC BY 4.0)"
)


class DatasetError(ValueError):
    """A dataset that cannot be read; the message names the file and the place."""


# --- datasets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalQuestion:
    id: str  # stable across runs: "file:line" for JSONL, "subfolder/file.xml#pid" for MedQuAD
    question: str
    reference: str = ""  # a reference answer, "" when there is none
    focus: str = ""  # what the question is about ("Paget's Disease of Bone"), "" when unknown
    synonyms: tuple[str, ...] = ()
    emergency: bool | None = None  # the label: should triage stop here? None when unlabelled
    subset: str = ""  # MedQuAD subfolder (e.g. "6_NINDS_QA"); "" for JSONL
    qtype: str = ""  # MedQuAD question type (information, symptoms, treatment, ...)


@dataclass
class Dataset:
    name: str  # file stem or folder name: names the output files
    path: str
    kind: str  # "jsonl" or "medquad"
    questions: list[EvalQuestion]  # after sampling, in dataset order
    available: int  # usable questions before sampling
    skipped: int = 0  # records without a question or a reference answer where one was expected


_SPACES = re.compile(r"\s+")


def _tidy(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _tidy_question(text: str) -> str:
    # MedQuAD writes "What is (are) Gout ?" and "Who is at risk for X? ?": one tidy mark.
    text = re.sub(r"\s+([?.!,;:])", r"\1", _tidy(text))
    return re.sub(r"\?{2,}", "?", text)


def read_jsonl(path: Path) -> list[EvalQuestion]:
    """One question per line. Raises DatasetError naming the line for anything malformed, so a
    typo in a label is never silently scored as 'unlabelled'."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text") from error
    questions: list[EvalQuestion] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{where}: invalid JSON ({error.msg})") from error
        if not isinstance(item, dict):
            raise DatasetError(f"{where}: expected an object, got {type(item).__name__}")
        question = item.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DatasetError(f"{where}: 'question' must be non-empty text")
        for key in ("answer", "focus", "id"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise DatasetError(f"{where}: '{key}' must be text")
        emergency = item.get("emergency")
        if emergency is not None and not isinstance(emergency, bool):
            raise DatasetError(f"{where}: 'emergency' must be true or false, got {emergency!r}")
        synonyms = item.get("synonyms") or []
        if not isinstance(synonyms, list) or not all(isinstance(s, str) for s in synonyms):
            raise DatasetError(f"{where}: 'synonyms' must be a list of text")
        questions.append(
            EvalQuestion(
                id=item.get("id") or f"{path.name}:{number}",
                question=_tidy(question),
                reference=_tidy(item.get("answer") or ""),
                focus=_tidy(item.get("focus") or ""),
                synonyms=tuple(_tidy(s) for s in synonyms if s.strip()),
                emergency=emergency,
            )
        )
    return questions


def _local(tag: str) -> str:
    # MedQuAD mixes <Document>/<QAPair>/<Question> with <doc>/<pair>/<question> (a few NINDS files).
    return tag.rsplit("}", 1)[-1].lower()


def _child_text(element: ET.Element, name: str) -> str:
    for child in element:
        if _local(child.tag) == name:
            return "".join(child.itertext())
    return ""


def read_medquad_file(path: Path, root_folder: Path) -> tuple[list[EvalQuestion], int]:
    """The question/answer pairs of one MedQuAD file and how many were skipped for an empty answer
    (three MedQuAD subsets had their answers removed for copyright)."""
    try:
        # ElementTree never fetches external entities, and the bundled expat refuses entity bombs.
        root = ET.parse(path).getroot()  # noqa: S314
    except ET.ParseError as error:
        line, column = error.position
        raise DatasetError(f"{path}: invalid XML at line {line}, column {column}") from error
    focus = ""
    synonyms: list[str] = []
    for element in root.iter():
        name = _local(element.tag)
        if name in {"focus", "doctitle-focus"} and not focus:
            focus = _tidy("".join(element.itertext()))
        elif name == "synonym":
            synonym = _tidy("".join(element.itertext()))
            if synonym:
                synonyms.append(synonym)
    relative = path.relative_to(root_folder)
    subset = relative.parts[0] if len(relative.parts) > 1 else ""
    questions: list[EvalQuestion] = []
    skipped = 0
    pairs = [element for element in root.iter() if _local(element.tag) in {"qapair", "pair"}]
    for index, pair in enumerate(pairs, start=1):
        question = _tidy_question(_child_text(pair, "question"))
        reference = _tidy(_child_text(pair, "answer"))
        if not question or not reference:
            skipped += 1
            continue
        qtype = next((c.get("qtype", "") for c in pair if _local(c.tag) == "question"), "")
        questions.append(
            EvalQuestion(
                id=f"{relative.as_posix()}#{pair.get('pid') or index}",
                question=question,
                reference=reference,
                focus=focus,
                synonyms=tuple(synonyms),
                subset=subset,
                qtype=qtype,
            )
        )
    return questions, skipped


def read_medquad(folder: Path) -> tuple[list[EvalQuestion], int]:
    """Every answered pair under ``folder`` (recursively), in a fixed order so a seed always
    draws the same sample; returns (questions, skipped)."""
    files = sorted(folder.rglob("*.xml")) if folder.is_dir() else [folder]
    if not files:
        raise DatasetError(f"{folder}: no MedQuAD .xml files in this folder or below it")
    root_folder = folder if folder.is_dir() else folder.parent
    questions: list[EvalQuestion] = []
    skipped = 0
    for file in files:
        found, missing = read_medquad_file(file, root_folder)
        questions.extend(found)
        skipped += missing
    return questions, skipped


def sample(questions: Sequence[EvalQuestion], limit: int | None, seed: int) -> list[EvalQuestion]:
    """``limit`` questions drawn uniformly from the whole set (every MedQuAD subfolder, not the
    first one), reproducible for a seed, returned in dataset order."""
    if limit is None or limit >= len(questions):
        return list(questions)
    chosen = sorted(random.Random(seed).sample(range(len(questions)), limit))
    return [questions[index] for index in chosen]


def load_dataset(path: Path | str, limit: int | None = None, seed: int = 0) -> Dataset:
    """Read a JSONL file or a MedQuAD folder (or one MedQuAD .xml file) and sample it.
    Raises DatasetError when the path is missing, of an unknown kind, unreadable or empty."""
    path = Path(path)
    if limit is not None and limit < 1:
        raise DatasetError(f"--limit must be at least 1, got {limit}")
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    skipped = 0
    if path.is_dir() or path.suffix.lower() == ".xml":
        kind = "medquad"
        questions, skipped = read_medquad(path)
    elif path.suffix.lower() == ".jsonl":
        kind = "jsonl"
        questions = read_jsonl(path)
    else:
        raise DatasetError(f"{path}: unsupported dataset; use a .jsonl file or a MedQuAD XML folder")
    if not questions:
        raise DatasetError(f"{path}: no usable questions (skipped {skipped} without an answer)")
    return Dataset(
        name=path.stem if path.is_file() else path.name,
        path=str(path),
        kind=kind,
        questions=sample(questions, limit, seed),
        available=len(questions),
        skipped=skipped,
    )


# --- metrics ------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, as ROUGE's reference implementation uses (no stemming)."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004): one big-int
    operation per token of ``second``, so a 100-word answer against a 3,000-word MedQuAD
    reference costs milliseconds instead of the 300,000 steps of the textbook table."""
    if not first or not second:
        return 0
    masks: dict[str, int] = {}
    for position, token in enumerate(first):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(first)) - 1
    row = full  # bit i set = "no match used up to position i yet"
    for token in second:
        matches = row & masks.get(token, 0)
        row = ((row + matches) | (row - matches)) & full
    return len(first) - row.bit_count()


def rouge_l_f1(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (precision and recall of the longest common word subsequence, beta = 1)."""
    cand, ref = tokenize(candidate), tokenize(reference)
    common = lcs_length(ref, cand)
    if common == 0:
        return 0.0
    precision, recall = common / len(cand), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _normalise_name(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"['’‘`´]", "", text)  # "Paget's" and "Pagets" are the same name
    return " ".join(re.sub(r"[^\w]+|_", " ", text).split())


# MedQuAD foci narrow a condition to a group ("Kidney Stones in Adults", "Adult Acute Myeloid
# Leukemia"); an answer about the condition itself rarely repeats the qualifier.
_QUALIFIER = re.compile(r"\s+(?:in|for|with|during)\s+.*$", re.IGNORECASE)
_AGE_PREFIX = re.compile(r"^(?:adult|childhood)\s+", re.IGNORECASE)


def focus_names(focus: str, synonyms: Sequence[str] = ()) -> list[str]:
    """The ways an answer may name the focus: the focus and each synonym, plus the parts of
    MedQuAD's compound foci ("Parasites - Taeniasis", "X (GAE); Keratitis", "Pyelonephritis:
    Kidney Infection") and the condition without its group qualifier ("Kidney Stones in Adults"
    -> "kidney stones"). Names under three characters are dropped: they match by accident."""
    names: list[str] = []
    for raw in (focus, *synonyms):
        candidates = [raw]
        for part in re.split(r"[;:,]|\s+-\s+", raw):
            bare = re.sub(r"\([^)]*\)", " ", part)
            candidates += [part, bare, *re.findall(r"\(([^)]*)\)", part)]
            candidates.append(_AGE_PREFIX.sub("", _QUALIFIER.sub("", bare.strip())))
        for candidate in candidates:
            name = _normalise_name(candidate)
            if len(name) >= 3 and name not in names:
                names.append(name)
    return names


def names_focus(answer: str, names: Sequence[str]) -> bool:
    """True when the answer contains one of the names as whole words, ignoring case."""
    text = f" {_normalise_name(answer)} "
    return any(f" {name} " in text for name in names)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks, as numpy's default."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# --- configurations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    name: str
    load_model: bool  # MEDBOT_LOAD_MODEL
    adapter: bool  # serve the active adapter (skipped when none is active) or force the base model
    grounding: bool  # MEDBOT_GROUNDING: the matched curated entry goes into the prompt
    description: str


CONFIGS: dict[str, EvalConfig] = {
    config.name: config
    for config in (
        EvalConfig("rules", False, False, True, "no model: triage and curated rules only"),
        EvalConfig("base", True, False, True, "base model, no adapter, grounded on the matched rule"),
        EvalConfig("adapter", True, True, True, "base model + the active LoRA adapter, grounded"),
        EvalConfig("base-nogrounding", True, False, False, "base model, no adapter, no grounding"),
        EvalConfig("adapter-nogrounding", True, True, False, "base model + the active adapter, no grounding"),
    )
}


class ConfigSkipped(Exception):
    """A configuration that cannot run here (no active adapter, the model failed to load)."""


@dataclass
class GenerationTiming:
    seconds: float
    first_token_seconds: float | None
    tokens: int
    stopped_by: str


class TimedGenerator:
    """Wraps the engine at the ``Generator`` seam to time each generation. AnswerResult's latency
    includes triage and retrieval, and its token count is lost when the quality gate rejects a
    model answer; tokens per second must count every generation the model actually ran."""

    def __init__(self, inner: Generator, log: list[GenerationTiming]) -> None:
        self.inner = inner
        self.version = inner.version
        self.log = log

    def stream(self, request: GenerationRequest, stats: GenerationStats) -> Iterator[str]:
        started = time.monotonic()
        first: float | None = None
        try:
            for piece in self.inner.stream(request, stats):
                if first is None:
                    first = time.monotonic() - started
                yield piece
        finally:
            self.log.append(GenerationTiming(time.monotonic() - started, first, stats.tokens, stats.stopped_by))


@dataclass
class Row:
    """One question answered by one configuration: what came back and how it scored."""

    config: str
    id: str
    question: str
    subset: str
    qtype: str
    focus: str
    label_emergency: bool | None
    source: str
    answered: bool  # non-empty, and not the "no reliable answer" text
    disclaimer: bool
    relevant: bool | None  # names the focus or a synonym; None without a focus
    rouge_l: float | None  # None without a reference answer
    latency_ms: int
    tokens: int  # as stored on the message (model answers only)
    generated_tokens: int  # every token the model produced, kept or not
    generation_seconds: float
    first_token_ms: int | None
    stopped_by: str
    fallback_reason: str
    matched_rule: str
    rule_score: float | None
    adapter_version: str
    in_training: bool  # the question is a TrainingExample: the adapter may have seen it
    answer: str


def score(question: EvalQuestion, result: pipeline.AnswerResult) -> dict[str, Any]:
    """The per-question metrics for one pipeline answer."""
    names = focus_names(question.focus, question.synonyms) if question.focus else []
    return {
        "answered": bool(result.text.strip()) and result.source != pipeline.UNAVAILABLE,
        "disclaimer": bool(result.disclaimer.strip()),
        "relevant": names_focus(result.text, names) if names else None,
        "rouge_l": round(rouge_l_f1(result.text, question.reference), 4) if question.reference else None,
    }


def _rate(hits: int, total: int) -> dict[str, Any]:
    return {"rate": round(hits / total, 4) if total else None, "hits": hits, "n": total}


def summarise(rows: Sequence[Row]) -> dict[str, Any]:
    """One configuration's headline numbers.

    answered: non-empty and not the "no reliable answer" text (that text is a safe refusal);
    relevance: share of answers naming the focus, over questions with a focus; ROUGE-L: mean F1
    over questions with a reference; emergency recall: labelled emergencies answered with the
    emergency text; false alarms: labelled non-emergencies answered with it; tokens/s: all
    generated tokens over all generation seconds (gate-rejected generations cost time too)."""
    n = len(rows)
    sources = Counter(row.source for row in rows)
    focused = [row for row in rows if row.relevant is not None]
    scored = [row.rouge_l for row in rows if row.rouge_l is not None]
    positives = [row for row in rows if row.label_emergency is True]
    negatives = [row for row in rows if row.label_emergency is False]
    generated = [row for row in rows if row.generation_seconds > 0]
    gen_seconds = sum(row.generation_seconds for row in generated)
    gen_tokens = sum(row.generated_tokens for row in generated)
    first_tokens = [row.first_token_ms for row in generated if row.first_token_ms is not None]
    latencies = [row.latency_ms for row in rows]
    return {
        "questions": n,
        "answered": _rate(sum(row.answered for row in rows), n),
        "disclaimer": _rate(sum(row.disclaimer for row in rows), n),
        "sources": {source: _rate(sources[source], n) for source in sorted(sources)},
        "relevance": _rate(sum(bool(row.relevant) for row in focused), len(focused)),
        "rouge_l": {"mean": round(sum(scored) / len(scored), 4) if scored else None, "n": len(scored)},
        "emergency_recall": _rate(sum(row.source == pipeline.EMERGENCY for row in positives), len(positives)),
        "emergency_false_alarms": _rate(sum(row.source == pipeline.EMERGENCY for row in negatives), len(negatives)),
        "missed_emergencies": [row.id for row in positives if row.source != pipeline.EMERGENCY],
        "false_alarms": [row.id for row in negatives if row.source == pipeline.EMERGENCY],
        "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
        "generations": len(generated),
        "tokens_per_second": round(gen_tokens / gen_seconds, 2) if gen_seconds else None,
        "first_token_ms_p50": percentile(first_tokens, 50),
        "quality_gate_fallbacks": sum(row.fallback_reason.startswith("quality gate") for row in rows),
        "timeouts": sum(row.stopped_by == "timeout" for row in rows),
        "model_errors": sum(row.fallback_reason.startswith("model error") for row in rows),
        "in_training": sum(row.in_training for row in rows),
    }


# --- running ------------------------------------------------------------------------------------


@dataclass
class EvalOptions:
    dataset: Path
    configs: list[str] = field(default_factory=lambda: ["rules"])
    limit: int | None = None
    seed: int = 0  # sampling, and sampling-based generation if MEDBOT_TEMPERATURE > 0
    max_new_tokens: int | None = None  # None: MEDBOT_MAX_NEW_TOKENS
    progress: bool = True  # a tqdm bar on stderr (tqdm turns itself off when stderr is not a terminal)


@dataclass
class ConfigOutcome:
    config: str
    description: str
    skipped: str = ""  # why it did not run; "" when it ran
    summary: dict[str, Any] = field(default_factory=dict)
    adapter_version: str = ""
    load_seconds: float | None = None
    wall_seconds: float = 0.0


@dataclass
class Report:
    meta: dict[str, Any]
    outcomes: list[ConfigOutcome]
    rows: list[Row]

    def as_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "summary": {outcome.config: asdict(outcome) for outcome in self.outcomes},
            "rows": [asdict(row) for row in self.rows],
        }


def _training_questions() -> set[str]:
    """Normalised TrainingExample questions, to flag evaluation questions the adapter may have
    been trained on (MedQuAD can be imported as training data)."""
    if not apps.is_installed("training"):
        return set()
    try:
        example = apps.get_model("training", "TrainingExample")
        return {_normalise_name(q) for q in example.objects.values_list("question", flat=True).iterator()}
    except (DatabaseError, LookupError):
        logger.warning("Could not read training examples; in_training is left false", exc_info=True)
        return set()


def _no_hit(pk: int) -> None:
    """Stands in for ``count_hit`` during an evaluation: hit counts are the curators' usage data."""


@contextmanager
def configured(config: EvalConfig, options: EvalOptions, timings: list[GenerationTiming]) -> Iterator[str]:
    """Switch the process to ``config`` and yield the served adapter version ("" without a model).

    The answer cache is off (every answer is computed); rule hit counts are left alone (an
    evaluation must not skew the curators' statistics); the adapter is resolved once and pinned.
    Raises ConfigSkipped when the configuration cannot run. Leaves the engine reset."""
    manager = get_manager()
    overrides: dict[str, Any] = {
        "MEDBOT_LOAD_MODEL": config.load_model,
        "MEDBOT_GROUNDING": config.grounding,
        "MEDBOT_ANSWER_CACHE_SECONDS": 0,
    }
    if options.max_new_tokens is not None:
        overrides["MEDBOT_MAX_NEW_TOKENS"] = options.max_new_tokens
    with ExitStack() as stack:
        stack.enter_context(override_settings(**overrides))
        stack.enter_context(mock.patch.object(FallbackRule, "count_hit", staticmethod(_no_hit)))
        stack.enter_context(mock.patch.object(EmergencyRule, "count_hit", staticmethod(_no_hit)))
        stack.callback(manager.reset)
        adapter = adapters.active_adapter() if config.adapter else None
        if config.adapter and adapter is None:
            raise ConfigSkipped(
                "no active adapter: activate a TrainingRun (manage.py train, or the admin) or set MEDBOT_ADAPTER"
            )
        # Pinned for the whole configuration: the base ones hide any active adapter, and a run
        # activated mid-evaluation must not swap the model under half of the questions.
        stack.enter_context(mock.patch.object(adapters, "active_adapter", lambda: adapter))
        manager.reset()
        version = ""
        if config.load_model:
            manager.start(wait=True)
            engine = manager.get()
            if manager.state != READY or engine is None:
                raise ConfigSkipped(f"the model did not load: {manager.status()['error'] or manager.state}")
            if config.adapter and engine.version == "base":
                raise ConfigSkipped("the active adapter could not be loaded; the engine serves the base model")
            version = engine.version
            if settings.MEDBOT_TEMPERATURE > 0:
                import torch

                torch.manual_seed(options.seed)
            real_get = manager.get
            wrapped: dict[int, TimedGenerator] = {}

            def timed_get() -> Generator | None:
                inner = real_get()
                if inner is None:
                    return None
                if id(inner) not in wrapped:
                    wrapped.clear()
                    wrapped[id(inner)] = TimedGenerator(inner, timings)
                return wrapped[id(inner)]

            stack.enter_context(mock.patch.object(manager, "get", timed_get))
        yield version


def run_config(
    config: EvalConfig,
    dataset: Dataset,
    options: EvalOptions,
    trained: set[str],
    log: Callable[[str], None] = print,
) -> tuple[ConfigOutcome, list[Row]]:
    """Answer every question of ``dataset`` under ``config``; a skipped configuration comes back
    with its reason and no rows. Progress is a tqdm bar on a terminal and a ``log`` line every
    tenth of the way otherwise (model runs take an hour on a busy machine: say it is alive)."""
    outcome = ConfigOutcome(config=config.name, description=config.description)
    started = time.monotonic()
    rows: list[Row] = []
    timings: list[GenerationTiming] = []
    try:
        with configured(config, options, timings) as version:
            outcome.adapter_version = version
            outcome.load_seconds = round(get_manager().load_seconds, 2) if config.load_model else None
            bar = tqdm(dataset.questions, desc=config.name, unit="q", disable=None if options.progress else True)
            every = max(1, len(dataset.questions) // 10)
            for done, question in enumerate(bar):
                if options.progress and bar.disable and done and done % every == 0:
                    elapsed = time.monotonic() - started
                    log(f"{config.name}: {done}/{len(dataset.questions)} questions in {elapsed:.0f} s")
                timings.clear()
                result = pipeline.answer(question.question)
                generation = timings[-1] if timings else None
                rows.append(
                    Row(
                        config=config.name,
                        id=question.id,
                        question=question.question,
                        subset=question.subset,
                        qtype=question.qtype,
                        focus=question.focus,
                        label_emergency=question.emergency,
                        source=result.source,
                        **score(question, result),
                        latency_ms=result.latency_ms,
                        tokens=result.tokens,
                        generated_tokens=generation.tokens if generation else 0,
                        generation_seconds=round(generation.seconds, 4) if generation else 0.0,
                        first_token_ms=(
                            round(generation.first_token_seconds * 1000)
                            if generation and generation.first_token_seconds is not None
                            else None
                        ),
                        stopped_by=generation.stopped_by if generation else "",
                        fallback_reason=result.fallback_reason,
                        matched_rule=result.matched_rule,
                        rule_score=result.rule_score,
                        adapter_version=result.adapter_version,
                        in_training=_normalise_name(question.question) in trained,
                        answer=result.text,
                    )
                )
    except ConfigSkipped as reason:
        outcome.skipped = str(reason)
        return outcome, []
    outcome.summary = summarise(rows)
    outcome.wall_seconds = round(time.monotonic() - started, 2)
    return outcome, rows


def evaluate(options: EvalOptions, log: Callable[[str], None] = print) -> Report:
    """Load the dataset and run each configuration in turn. Raises DatasetError for a bad dataset
    and ValueError for an unknown configuration name; a configuration that cannot run is skipped
    with its reason (in the report and through ``log``), the others still run."""
    unknown = [name for name in options.configs if name not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    dataset = load_dataset(options.dataset, options.limit, options.seed)
    started = time.monotonic()
    if not FallbackRule.objects.exists():
        log("warning: no curated fallback rules in the database (run `make fixtures`); rule answers will be missing")
    trained = _training_questions()
    outcomes: list[ConfigOutcome] = []
    rows: list[Row] = []
    for name in dict.fromkeys(options.configs):  # each once, in the order given
        outcome, config_rows = run_config(CONFIGS[name], dataset, options, trained, log)
        if outcome.skipped:
            log(f"skipped {name}: {outcome.skipped}")
        outcomes.append(outcome)
        rows.extend(config_rows)
    meta = {
        "dataset": dataset.name,
        "dataset_path": dataset.path,
        "kind": dataset.kind,
        "questions": len(dataset.questions),
        "available": dataset.available,
        "skipped_without_answer": dataset.skipped,
        "subsets": dict(sorted(Counter(q.subset for q in dataset.questions if q.subset).items())),
        "limit": options.limit,
        "seed": options.seed,
        "configs": list(dict.fromkeys(options.configs)),
        "base_model": settings.MEDBOT_BASE_MODEL,
        "max_new_tokens": options.max_new_tokens or settings.MEDBOT_MAX_NEW_TOKENS,
        "temperature": settings.MEDBOT_TEMPERATURE,
        "dtype": settings.MEDBOT_DTYPE,
        "torch_threads": settings.MEDBOT_TORCH_THREADS,
        "generation_timeout_s": settings.MEDBOT_GENERATION_TIMEOUT,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.monotonic() - started, 2),
    }
    if dataset.kind == "medquad":
        meta["credit"] = MEDQUAD_CREDIT
    return Report(meta=meta, outcomes=outcomes, rows=rows)


# --- output -------------------------------------------------------------------------------------


def _pct(rate: dict[str, Any]) -> str:
    if rate["rate"] is None:
        return "–"
    return f"{rate['rate'] * 100:.1f} % ({rate['hits']}/{rate['n']})"


def _number(value: float | None, unit: str = "", digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def render_markdown(report: Report) -> str:
    """A table with the configurations side by side, then skips, misses and false alarms."""
    meta = report.meta
    ran = [outcome for outcome in report.outcomes if not outcome.skipped]
    drawn = "a random sample (seed {seed}) of".format(**meta) if meta["questions"] < meta["available"] else "all"
    lines = [
        f"## Evaluation: {meta['dataset']}",
        "",
        f"{meta['questions']} questions ({drawn} {meta['available']} usable in `{meta['dataset_path']}`"
        + (f", {meta['skipped_without_answer']} without an answer skipped" if meta["skipped_without_answer"] else "")
        + f"). Base model `{meta['base_model']}`, {meta['max_new_tokens']} max new tokens, temperature "
        f"{meta['temperature']}, {meta['dtype']}, {meta['cpu_count']} CPUs; answer cache off. "
        f"Run took {meta['wall_seconds']:.0f} s.",
        "",
    ]
    if meta.get("subsets"):
        lines += ["Subsets: " + ", ".join(f"{name} {count}" for name, count in meta["subsets"].items()) + ".", ""]
    if ran:
        sources = sorted({source for outcome in ran for source in outcome.summary["sources"]})
        table: list[tuple[str, Callable[[ConfigOutcome], str]]] = [
            ("adapter", lambda o: o.adapter_version or "–"),
            ("answered (not 'no reliable answer')", lambda o: _pct(o.summary["answered"])),
            ("disclaimer attached", lambda o: _pct(o.summary["disclaimer"])),
            *[
                (
                    f"source: {source}",
                    lambda o, s=source: _pct(o.summary["sources"].get(s) or _rate(0, o.summary["questions"])),
                )
                for source in sources
            ],
            ("relevance (names the focus)", lambda o: _pct(o.summary["relevance"])),
            (
                "ROUGE-L F1 vs reference (mean)",
                lambda o: (
                    f"{_number(o.summary['rouge_l']['mean'], digits=3)} (n={o.summary['rouge_l']['n']})"
                    if o.summary["rouge_l"]["n"]
                    else "–"
                ),
            ),
            ("emergency recall", lambda o: _pct(o.summary["emergency_recall"])),
            ("emergency false alarms", lambda o: _pct(o.summary["emergency_false_alarms"])),
            ("latency p50", lambda o: _number(o.summary["latency_ms"]["p50"], " ms")),
            ("latency p95", lambda o: _number(o.summary["latency_ms"]["p95"], " ms")),
            ("generation tokens/s", lambda o: _number(o.summary["tokens_per_second"], digits=1)),
            ("time to first token p50", lambda o: _number(o.summary["first_token_ms_p50"], " ms")),
            ("quality-gate fallbacks to rules", lambda o: str(o.summary["quality_gate_fallbacks"])),
            ("generation timeouts", lambda o: str(o.summary["timeouts"])),
            ("questions also in training data", lambda o: str(o.summary["in_training"])),
            ("model load", lambda o: _number(o.load_seconds, " s", 1)),
            ("wall time", lambda o: _number(o.wall_seconds, " s")),
        ]
        lines += [
            "| metric | " + " | ".join(outcome.config for outcome in ran) + " |",
            "|---|" + "---|" * len(ran),
            *[f"| {label} | " + " | ".join(cell(outcome) for outcome in ran) + " |" for label, cell in table],
            "",
        ]
    for outcome in report.outcomes:
        if outcome.skipped:
            lines += [f"Skipped `{outcome.config}`: {outcome.skipped}.", ""]
    questions = {row.id: row.question for row in report.rows}
    for key, title in (("missed_emergencies", "Missed emergencies"), ("false_alarms", "False alarms")):
        listed: dict[str, list[str]] = {}
        for outcome in ran:
            for qid in outcome.summary[key]:
                listed.setdefault(qid, []).append(outcome.config)
        if listed:
            lines += [f"{title}:", ""]
            lines += [f"- `{qid}` ({', '.join(configs)}): {questions[qid]}" for qid, configs in listed.items()]
            lines.append("")
    if meta.get("credit"):
        lines += [f"Data: {meta['credit']}. Reference answers are read at run time and not stored here.", ""]
    return "\n".join(lines)


def read_report(path: Path) -> Report:
    """A report back from its JSON file, to re-render the Markdown without answering again."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return Report(
        meta=data["meta"],
        outcomes=[ConfigOutcome(**outcome) for outcome in data["summary"].values()],
        rows=[Row(**row) for row in data["rows"]],
    )


def write_report(report: Report, output: Path) -> tuple[Path, Path]:
    """Write ``eval-<dataset>.json`` (meta, per-configuration summaries, every row) and ``.md``
    into ``output``. Each file is written to a .tmp first and renamed, so an interrupted run never
    leaves half a result behind."""
    output.mkdir(parents=True, exist_ok=True)
    stem = f"eval-{report.meta['dataset']}"  # bench/results also holds the speed benchmarks' files
    paths = (output / f"{stem}.json", output / f"{stem}.md")
    contents = (json.dumps(report.as_dict(), indent=1, ensure_ascii=False) + "\n", render_markdown(report))
    for path, content in zip(paths, contents, strict=True):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(content, encoding="utf-8")
        temporary.replace(path)
    return paths
