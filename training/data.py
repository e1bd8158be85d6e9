"""Reading question/answer pairs from files, and importing them as TrainingExamples.

Formats: ``.json`` (a list of objects), ``.jsonl`` (one object a line), each object with
``question``/``answer`` or ``input``/``output``; and MedQuAD XML (a ``.xml`` file or a folder
searched recursively; read by ``knowledge.importers.read_medquad_file``, which knows every root and
layout in MedQuAD's subsets).

A file is read completely before anything is saved, and the import is one transaction: a bad
file raises DataError (naming the file and where) and changes nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from knowledge import importers
from knowledge.importers import clean_answer, clean_question
from training.models import TrainingExample

FIELD_PAIRS = (("question", "answer"), ("input", "output"))


class DataError(ValueError):
    """A file that cannot be imported; the message says which file and where."""


@dataclass
class ReadResult:
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (question, answer), in file order
    skipped: int = 0  # records with an empty question or answer (MedQuAD leaves some answers out)

    @property
    def read(self) -> int:
        return len(self.pairs) + self.skipped


@dataclass(frozen=True)
class ImportSummary:
    read: int  # records found in the file(s)
    added: int  # new TrainingExamples (0 in a dry run: would be added)
    duplicates: int  # questions already present, in the table or earlier in the file(s)
    skipped: int  # records without a question or an answer
    dry_run: bool

    def __str__(self) -> str:
        verb = "would add" if self.dry_run else "added"
        text = f"read {self.read}, {verb} {self.added}, duplicates {self.duplicates}, skipped {self.skipped}"
        return text + (" (dry run: nothing was saved)" if self.dry_run else "")


def normalise_question(text: str) -> str:
    """The duplicate key: case, punctuation and spacing do not make a question new."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def _pair_from_object(item: Any, where: str, result: ReadResult) -> None:
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected an object with question/answer, got {type(item).__name__}")
    for question_key, answer_key in FIELD_PAIRS:
        if question_key in item and answer_key in item:
            question, answer = item[question_key], item[answer_key]
            break
    else:
        raise DataError(f"{where}: needs 'question' and 'answer' (or 'input' and 'output'); has {sorted(item)}")
    for name, value in ((question_key, question), (answer_key, answer)):
        if value is not None and not isinstance(value, str):
            raise DataError(f"{where}: '{name}' must be text, got {type(value).__name__}")
    question, answer = clean_question(question or ""), clean_answer(answer or "")
    if question and answer:
        result.pairs.append((question, answer))
    else:
        result.skipped += 1


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error


def read_json(path: Path) -> ReadResult:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from error
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    result = ReadResult()
    for index, item in enumerate(data):
        _pair_from_object(item, f"{path}, item {index + 1}", result)
    return result


def read_jsonl(path: Path) -> ReadResult:
    result = ReadResult()
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: invalid JSON on line {number}, column {error.colno}: {error.msg}") from error
        _pair_from_object(item, f"{path}, line {number}", result)
    return result


def read_medquad_file(path: Path, result: ReadResult) -> None:
    # One MedQuAD reader for training and the knowledge base: every root and layout in the subsets.
    try:
        records = importers.read_medquad_file(path)
    except importers.ImportProblem as problem:
        raise DataError(str(problem)) from problem
    result.pairs.extend((record.title, record.text) for record in records)
    result.skipped += records.skipped


def read_medquad(path: Path) -> ReadResult:
    files = sorted(path.rglob("*.xml")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no .xml files found")
    result = ReadResult()
    for file in files:
        read_medquad_file(file, result)
    return result


def read_pairs(path: Path) -> ReadResult:
    """All question/answer pairs in ``path``; raises DataError for anything it cannot read."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".xml":
        return read_medquad(path)
    if suffix == ".json":
        return read_json(path)
    if suffix == ".jsonl":
        return read_jsonl(path)
    raise DataError(f"{path}: unsupported file type; use .json, .jsonl, a MedQuAD .xml file or a folder of them")


def new_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs whose question is not known yet, in the table or earlier in ``pairs``."""
    seen = {normalise_question(q) for q in TrainingExample.objects.values_list("question", flat=True).iterator()}
    fresh = []
    for question, answer in pairs:
        key = normalise_question(question)
        if key not in seen:
            seen.add(key)
            fresh.append((question, answer))
    return fresh


def import_examples(path: Path, dry_run: bool = False) -> ImportSummary:
    """Add the new pairs in ``path`` as enabled TrainingExamples with origin "import".

    Duplicates (by normalised question) of existing examples, disabled ones included, and of
    earlier records in the same import are left out. Raises DataError before saving anything."""
    result = read_pairs(path)
    with transaction.atomic():
        fresh = new_pairs(result.pairs)
        if not dry_run:
            TrainingExample.objects.bulk_create(
                [TrainingExample(question=q, answer=a, origin=TrainingExample.Origin.IMPORT) for q, a in fresh],
                batch_size=500,
            )
    return ImportSummary(
        read=result.read,
        added=len(fresh),
        duplicates=len(result.pairs) - len(fresh),
        skipped=result.skipped,
        dry_run=dry_run,
    )
