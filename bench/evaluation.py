"""The labelled-question evaluation: our own questions through the whole answer pipeline.

``bench/data/labelled_questions.jsonl`` (ours) labels which questions are emergencies and names
each one's focus: every configuration (``bench.knowledge_split.CONFIGS``: rules, extract, model,
model-nogate) answers all of them through ``inference.pipeline.answer`` (cleaning, triage,
retrieval, the model and its gates, the disclaimer), and we score emergency recall and false
alarms, answered rate, whether the answer names the focus, ROUGE-L where a reference exists, and
latency. ``rules`` answers from the curated entries alone; the others from whatever knowledge the
database holds. The MedQuAD evaluation is ``bench.knowledge_split``. ``manage.py evaluate --dataset``
is the front door.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from tqdm import tqdm

from bench.knowledge_split import CONFIGS, ConfigSkipped, configured, curated_documents
from bench.metrics import Report, percentile, rouge_l_f1
from inference import pipeline
from inference.retrieval import retriever
from knowledge.search import KnowledgeIndex


class DatasetError(ValueError):
    """A dataset that cannot be read; the message names the file and the place."""


# --- datasets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalQuestion:
    id: str  # stable across runs: the "id" field, else "file:line"
    question: str
    reference: str = ""  # a reference answer, "" when there is none
    focus: str = ""  # what the question is about ("Paget's Disease of Bone"), "" when unknown
    synonyms: tuple[str, ...] = ()
    emergency: bool | None = None  # the label: should triage stop here? None when unlabelled


_SPACES = re.compile(r"\s+")


def _tidy(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


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


# --- metrics ------------------------------------------------------------------------------------


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


def load_dataset(path: Path | str) -> list[EvalQuestion]:
    """The questions of a JSONL file; raises DatasetError when it is missing, not JSONL or empty."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if path.suffix.lower() != ".jsonl":
        raise DatasetError(f"{path}: unsupported dataset; use a .jsonl file (MedQuAD: --knowledge-split)")
    questions = read_jsonl(path)
    if not questions:
        raise DatasetError(f"{path}: no questions")
    return questions


# --- scoring ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One question answered by one configuration."""

    config: str
    id: str
    question: str
    focus: str
    label_emergency: bool | None
    source: str
    answered: bool  # a model, extract or rule answer: not "no reliable answer", not emergency
    disclaimer: bool
    relevant: bool | None  # names the focus or a synonym; None without a focus
    rouge_l: float | None  # None without a reference answer
    latency_ms: int
    fallback: str
    matched: str  # the emergency rule or the passage that answered
    answer: str


def score(question: EvalQuestion, result: pipeline.AnswerResult) -> dict[str, Any]:
    names = focus_names(question.focus, question.synonyms) if question.focus else []
    return {
        "answered": result.source in {pipeline.Source.MODEL, pipeline.Source.EXTRACT, pipeline.Source.RULE},
        "disclaimer": bool(result.disclaimer.strip()),
        "relevant": names_focus(result.text, names) if names else None,
        "rouge_l": round(rouge_l_f1(result.text, question.reference), 4) if question.reference else None,
    }


def _rate(hits: int, total: int) -> dict[str, Any]:
    return {"rate": round(hits / total, 4) if total else None, "hits": hits, "n": total}


def summarise(rows: Sequence[Row]) -> dict[str, Any]:
    """One configuration's numbers: emergency recall over labelled emergencies, false alarms over
    labelled non-emergencies, relevance over questions with a focus, ROUGE-L over those with a
    reference."""
    n = len(rows)
    focused = [row for row in rows if row.relevant is not None]
    scored = [row.rouge_l for row in rows if row.rouge_l is not None]
    positives = [row for row in rows if row.label_emergency is True]
    negatives = [row for row in rows if row.label_emergency is False]
    latencies = [row.latency_ms for row in rows]
    return {
        "questions": n,
        "answered": _rate(sum(row.answered for row in rows), n),
        "disclaimer": _rate(sum(row.disclaimer for row in rows), n),
        "sources": dict(sorted(Counter(row.source for row in rows).items())),
        "relevance": _rate(sum(bool(row.relevant) for row in focused), len(focused)),
        "rouge_l": {"mean": round(sum(scored) / len(scored), 4) if scored else None, "n": len(scored)},
        "emergency_recall": _rate(sum(row.source == pipeline.Source.EMERGENCY for row in positives), len(positives)),
        "emergency_false_alarms": _rate(
            sum(row.source == pipeline.Source.EMERGENCY for row in negatives), len(negatives)
        ),
        "missed_emergencies": [row.id for row in positives if row.source != pipeline.Source.EMERGENCY],
        "false_alarms": [row.id for row in negatives if row.source == pipeline.Source.EMERGENCY],
        "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
        "fallbacks": dict(sorted(Counter(row.fallback for row in rows if row.fallback).items())),
    }


# --- running ------------------------------------------------------------------------------------


@dataclass
class EvalOptions:
    dataset: Path
    configs: list[str] = field(default_factory=lambda: ["rules"])
    max_new_tokens: int | None = None  # None: MEDBOT_MAX_NEW_TOKENS
    progress: bool = True  # a tqdm bar on stderr


@dataclass
class ConfigOutcome:
    config: str
    description: str
    skipped: str = ""  # why it did not run; "" when it ran
    summary: dict[str, Any] = field(default_factory=dict)
    model_version: str = ""
    wall_seconds: float = 0.0


def run_config(name: str, questions: Sequence[EvalQuestion], options: EvalOptions) -> tuple[ConfigOutcome, list[Row]]:
    """Answer every question under one configuration; a skipped one comes back with its reason."""
    config = CONFIGS[name]
    outcome = ConfigOutcome(config=name, description=config.description)
    started = time.monotonic()
    rows: list[Row] = []
    try:
        with ExitStack() as stack:
            outcome.model_version = stack.enter_context(configured(config.use_model, options.max_new_tokens))
            if not config.passages:
                stack.enter_context(retriever.pinned(KnowledgeIndex(curated_documents())))
            for question in tqdm(questions, desc=name, unit="q", disable=not options.progress):
                result = pipeline.answer(question.question, use_model=config.use_model, gate=config.gate)
                rows.append(
                    Row(
                        config=name,
                        id=question.id,
                        question=question.question,
                        focus=question.focus,
                        label_emergency=question.emergency,
                        source=result.source,
                        **score(question, result),
                        latency_ms=result.latency_ms,
                        fallback=str(result.fallback),
                        matched=result.matched_rule,
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
    """Run each configuration on the dataset. Raises DatasetError for a bad dataset and
    ValueError for an unknown configuration; one that cannot run is skipped with its reason."""
    unknown = [name for name in options.configs if name not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    questions = load_dataset(options.dataset)
    started = time.monotonic()
    outcomes: list[ConfigOutcome] = []
    rows: list[Row] = []
    for name in dict.fromkeys(options.configs):
        outcome, config_rows = run_config(name, questions, options)
        if outcome.skipped:
            log(f"skipped {name}: {outcome.skipped}")
        outcomes.append(outcome)
        rows += config_rows
    meta = {
        "dataset": Path(options.dataset).stem,
        "dataset_path": str(options.dataset),
        "questions": len(questions),
        "configs": list(dict.fromkeys(options.configs)),
        "base_model": settings.MEDBOT_BASE_MODEL,
        "max_new_tokens": options.max_new_tokens or settings.MEDBOT_MAX_NEW_TOKENS,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.monotonic() - started, 2),
    }
    return Report(meta=meta, outcomes=outcomes, rows=rows)


# --- output -------------------------------------------------------------------------------------


def _pct(rate: dict[str, Any]) -> str:
    if rate["rate"] is None:
        return "–"
    return f"{rate['rate'] * 100:.1f} % ({rate['hits']}/{rate['n']})"


def _number(value: float | None, unit: str = "") -> str:
    return "–" if value is None else f"{value:.0f}{unit}"


def render_markdown(report: Report) -> str:
    """The configurations side by side, then skips, missed emergencies and false alarms."""
    meta = report.meta
    ran = [outcome for outcome in report.outcomes if not outcome.skipped]
    lines = [
        f"## Evaluation: {meta['dataset']}",
        "",
        f"{meta['questions']} questions in `{meta['dataset_path']}`. Base model `{meta['base_model']}`, "
        f"{meta['max_new_tokens']} max new tokens, {meta['cpu_count']} CPUs; answer cache off. "
        f"Run took {meta['wall_seconds']:.0f} s.",
        "",
    ]
    if ran:
        sources = sorted({source for outcome in ran for source in outcome.summary["sources"]})
        table: list[tuple[str, Callable[[ConfigOutcome], str]]] = [
            ("answered (not 'no reliable answer', not emergency)", lambda o: _pct(o.summary["answered"])),
            ("disclaimer attached", lambda o: _pct(o.summary["disclaimer"])),
            *[
                (
                    f"source: {source}",
                    lambda o, s=source: _pct(_rate(o.summary["sources"].get(s, 0), o.summary["questions"])),
                )
                for source in sources
            ],
            ("relevance (names the focus)", lambda o: _pct(o.summary["relevance"])),
            (
                "ROUGE-L F1 vs reference (mean)",
                lambda o: (
                    f"{o.summary['rouge_l']['mean']:.3f} (n={o.summary['rouge_l']['n']})"
                    if o.summary["rouge_l"]["n"]
                    else "–"
                ),
            ),
            ("emergency recall", lambda o: _pct(o.summary["emergency_recall"])),
            ("emergency false alarms", lambda o: _pct(o.summary["emergency_false_alarms"])),
            ("latency p50", lambda o: _number(o.summary["latency_ms"]["p50"], " ms")),
            ("latency p95", lambda o: _number(o.summary["latency_ms"]["p95"], " ms")),
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
    return "\n".join(lines)


def write_report(report: Report, output: Path) -> tuple[Path, Path]:
    """``eval-<dataset>.json`` and ``.md`` in ``output``, each written to a .tmp and renamed."""
    output.mkdir(parents=True, exist_ok=True)
    stem = f"eval-{report.meta['dataset']}"
    paths = (output / f"{stem}.json", output / f"{stem}.md")
    contents = (json.dumps(report.as_dict(), indent=1, ensure_ascii=False) + "\n", render_markdown(report))
    for path, content in zip(paths, contents, strict=True):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(content, encoding="utf-8")
        temporary.replace(path)
    return paths
