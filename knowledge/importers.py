"""Reading knowledge files into passage records, and importing them into a KnowledgeSource.

Formats, by file name:

- ``.xml``: MedQuAD. Three roots occur in its subsets: ``<Document>`` (``Focus``,
  ``FocusAnnotations/Synonyms``, ``QAPairs/QAPair/Question[@qtype]`` + ``Answer``), ``<doc>``
  (``doctitle-focus``, ``qaPairs/pair/question`` + ``answer``; some NINDS files) and
  ``<DiseaseFile>`` (the ``<Document>`` layout under another name; one CDC file).
- ``.jsonl``: one object a line with ``text`` (or ``answer``) and ``title`` (or ``question``),
  optionally ``focus``, ``synonyms`` (a list), ``question_type``, ``url`` and ``id``.
- ``.md``, ``.markdown``, ``.txt``: a leaflet. Its title is the first heading (or the file name),
  and it is split into passages at its headings, or into groups of paragraphs when it has none.

Each file is read completely before anything is written, and a file that cannot be read is
reported (path and reason) with nothing of it written, while the other files still import.
Symbolic links under an imported folder are reported too, and never followed or read.
Re-importing updates passages in place, matched by source and ``external_id``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from knowledge import versions
from knowledge.models import KnowledgeSource, Passage, QuestionType
from knowledge.text import drop_inline_headings, glued_words, unglue, without_pronunciations

MEDQUAD_SUFFIXES = {".xml"}
JSONL_SUFFIXES = {".jsonl"}
DOCUMENT_SUFFIXES = {".md", ".markdown", ".txt"}
SUPPORTED_SUFFIXES = MEDQUAD_SUFFIXES | JSONL_SUFFIXES | DOCUMENT_SUFFIXES
# Files that sit next to the data and are about it, not knowledge: MedQuAD ships readme.txt
# and LICENSE.txt in its folder. Skipped when a folder is searched; a file named on its own is read.
NOT_KNOWLEDGE = {"readme", "license", "licence", "copying", "notice", "changelog", "contributing"}
PARAGRAPHS_PER_PASSAGE_CHARS = 1200  # a leaflet without headings is cut into passages about this long
BATCH_SIZE = 500  # rows per bulk_create or delete statement (SQLite allows 32k variables)

# Longest passage an answer can use (MedQuAD's longest is ~30,000 characters); longer text is a
# document to split, not a passage, and would slow every index build.
MAX_PASSAGE_CHARS = 60_000
MAX_SYNONYM_CHARS = 10_000
_FIELD_LIMITS = {name: Passage._meta.get_field(name).max_length for name in ("external_id", "title", "focus", "url")}
_QUESTION_TYPES = {value.casefold(): value for value in QuestionType.values}


class ImportProblem(Exception):
    """A file (or path) that cannot be imported, and why. Nothing of it is written."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class PassageRecord:
    external_id: str  # stable within the source: "GARD/0000004/1", "asthma.md#2", a JSONL id or a hash
    title: str  # the question (MedQuAD) or heading
    focus: str  # the condition, drug or test it is about
    synonyms: tuple[str, ...]  # other names for the focus
    question_type: str  # a QuestionType value, or "" when unknown
    text: str
    url: str


class Records(list[PassageRecord]):
    """The records read from one file, in file order, plus how many were left out.

    A list, so readers can be used as ``list[PassageRecord]``; ``skipped`` counts pairs whose
    answer (or question) is empty: MedQuAD leaves a few answers out."""

    skipped: int = 0


# --- cleaning -----------------------------------------------------------------------------------


def clean_question(text: str) -> str:
    # MedQuAD writes "What is (are) Gout ?", "Who is at risk for X? ?" and "what is ... ?":
    # one space, no space before punctuation, one question mark, a capital first letter.
    text = " ".join(text.split())
    text = re.sub(r"\s+([?.!,;:])", r"\1", text)
    text = re.sub(r"\?{2,}", "?", text)
    return text[:1].upper() + text[1:]


# GARD's symptom tables, flattened in MedQuAD: "Signs and Symptoms Approximate number of patients
# (when available) Seizures - Short stature - ...". The heading goes; the rows become a list line.
_SYMPTOM_TABLE = re.compile(r"\s*Signs and Symptoms Approximate number of patients \(when available\)\s*")


# A row that ends with its frequency, before the next row: "Bone pain 90% Hyperostosis 50% ...".
_TABLE_ROW_END = re.compile(r"(\d+(?:\.\d+)?%) (?=[A-Z])")


def clean_answer(text: str) -> str:
    # Keep line breaks (MedQuAD lists use them) but drop indentation and blank runs.
    table = _SYMPTOM_TABLE.search(text)
    if table:
        rows = _TABLE_ROW_END.sub(r"\1 - ", text[table.end() :])
        text = text[: table.start()] + "\n- " + rows
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _clean_line(text: str) -> str:
    return " ".join(text.split())


def _question_type(value: str) -> str:
    return _QUESTION_TYPES.get(_clean_line(value).casefold(), "")


def _check_lengths(path: Path, record: PassageRecord, where: str) -> None:
    """What the database and the answers need of a record, checked at reading rather than
    failing half-way through writing: the column limits (PostgreSQL enforces them, SQLite does
    not), a passage size an answer can use, text the database can store (no NUL, no lone
    surrogates), and an address that is a web page (http or https), never a script."""
    for name, limit in _FIELD_LIMITS.items():
        value = getattr(record, name)
        if len(value) > limit:
            raise ImportProblem(path, f"{where}: {name} is {len(value)} characters long (at most {limit})")
    if len(record.text) > MAX_PASSAGE_CHARS:
        raise ImportProblem(
            path, f"{where}: text is {len(record.text)} characters long (at most {MAX_PASSAGE_CHARS}: split it)"
        )
    if sum(len(s) for s in record.synonyms) > MAX_SYNONYM_CHARS:
        raise ImportProblem(path, f"{where}: synonyms are longer than {MAX_SYNONYM_CHARS} characters in all")
    for name in ("external_id", "title", "focus", "question_type", "text", "url"):
        _check_storable(path, where, name, getattr(record, name))
    for synonym in record.synonyms:
        _check_storable(path, where, "synonyms", synonym)
    if record.url and urlsplit(record.url).scheme.lower() not in ("http", "https"):
        raise ImportProblem(path, f"{where}: url must be an http or https address, got {record.url[:60]!r}")


def _check_storable(path: Path, where: str, name: str, value: str) -> None:
    if "\x00" in value:
        raise ImportProblem(path, f"{where}: {name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ImportProblem(path, f"{where}: {name} contains an unpaired surrogate (not valid Unicode)") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportProblem(path, f"not UTF-8 text ({error.reason} at byte {error.start})") from error
    except OSError as error:
        raise ImportProblem(path, f"cannot be read ({error.strerror or error})") from error


# --- MedQuAD XML --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where one MedQuAD root keeps its parts (the names differ, the shape does not)."""

    id_attribute: str
    source_attribute: str
    focus: str
    pair: str
    question: str
    answer: str


_LAYOUTS = {
    "Document": _Layout("id", "source", "Focus", "QAPair", "Question", "Answer"),
    "DiseaseFile": _Layout("fid", "source", "Focus", "QAPair", "Question", "Answer"),
    "doc": _Layout("docid", "corpus", "doctitle-focus", "pair", "question", "answer"),
}


# MedQuAD sources whose answers keep their section headings run into the text ("Hips The hips are...").
HEADINGS_RUN_IN = frozenset({"NIHSeniorHealth"})


def read_medquad_file(path: Path) -> Records:
    """The question/answer pairs of one MedQuAD XML file, as records; raises ImportProblem.

    ``external_id`` is "<source>/<document>/<pid>". Document ids repeat across subsets (hence
    the source) and, in CancerGov, across files: ``0000013_2_1.xml`` … ``0000013_2_6.xml`` all
    say ``id="0000013_2"``, one disease each, so a file named "<id>_<n>" gives its own name."""
    try:
        # ElementTree never fetches external entities, and the expat it runs on (2.4.1 and
        # later, as bundled with Python 3.11) refuses entity-expansion bombs: safe for these files.
        root = ET.fromstring(_read_bytes(path))  # noqa: S314
    except ET.ParseError as error:
        line, column = error.position
        raise ImportProblem(path, f"invalid XML at line {line}, column {column}") from error
    layout = _LAYOUTS.get(root.tag)
    if layout is None:
        expected = ", ".join(f"<{tag}>" for tag in _LAYOUTS)
        raise ImportProblem(path, f"not a MedQuAD file (root element <{root.tag}>, expected {expected})")

    source = _clean_line(root.get(layout.source_attribute) or "") or "MedQuAD"
    document = _clean_line(root.get(layout.id_attribute) or "") or path.stem
    if path.stem.startswith(f"{document}_"):
        document = path.stem
    focus = _clean_line(root.findtext(layout.focus) or "")
    synonyms = tuple(
        dict.fromkeys(
            name
            for name in (_clean_line(element.text or "") for element in root.iterfind(".//Synonyms/Synonym"))
            if name and name.casefold() != focus.casefold()
        )
    )
    url = (root.get("url") or "").strip()

    records = Records()
    for number, pair in enumerate(root.iter(layout.pair), start=1):
        question_element = pair.find(layout.question)
        question = clean_question(question_element.text or "") if question_element is not None else ""
        answer = without_pronunciations(clean_answer(pair.findtext(layout.answer) or ""))
        if source in HEADINGS_RUN_IN:
            answer = drop_inline_headings(answer, focus)
        if not question or not answer:
            records.skipped += 1
            continue
        pid = _clean_line(pair.get("pid") or "") or str(number)
        record = PassageRecord(
            external_id=f"{source}/{document}/{pid}",
            title=question,
            # Three CDC files name no focus ("What is (are) ?"); their question is the best we have.
            focus=focus or question,
            synonyms=synonyms,
            question_type=_question_type(question_element.get("qtype", "")),
            text=answer,
            url=url,
        )
        _check_lengths(path, record, f"pair {pid}")
        records.append(record)
    _check_unique(path, records)
    return records


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImportProblem(path, f"cannot be read ({error.strerror or error})") from error
    try:
        # Expat would also take other declared encodings; every format here is UTF-8.
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ImportProblem(path, f"not UTF-8 text ({error.reason} at byte {error.start})") from error
    return data


def _check_unique(path: Path, records: Iterable[PassageRecord]) -> None:
    seen: set[str] = set()
    for record in records:
        if record.external_id in seen:
            raise ImportProblem(path, f"the id {record.external_id!r} occurs more than once")
        seen.add(record.external_id)


# --- JSONL --------------------------------------------------------------------------------------


def _text_field(item: dict[str, Any], names: tuple[str, ...], where: str, path: Path, required: bool) -> str:
    for name in names:
        if name in item:
            value = item[name]
            if value is None:
                return ""
            if not isinstance(value, str):
                raise ImportProblem(path, f"{where}: {name!r} must be text, got {type(value).__name__}")
            return value
    if required:
        raise ImportProblem(path, f"{where}: needs {' or '.join(repr(n) for n in names)}; has {sorted(item)}")
    return ""


def read_jsonl_file(path: Path) -> Records:
    """One record per line of a JSONL file; raises ImportProblem naming the first bad line.

    ``external_id`` is the line's ``id`` or, without one, a hash of its title and focus, so the
    same question about the same focus is the same passage on the next import."""
    records = Records()
    lines: dict[str, int] = {}
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise ImportProblem(path, f"{where}: invalid JSON at column {error.colno}: {error.msg}") from error
        if not isinstance(item, dict):
            raise ImportProblem(path, f"{where}: expected an object, got {type(item).__name__}")
        text = clean_answer(_text_field(item, ("text", "answer"), where, path, required=True))
        title = clean_question(_text_field(item, ("title", "question"), where, path, required=True))
        focus = _clean_line(_text_field(item, ("focus",), where, path, required=False))
        url = _text_field(item, ("url",), where, path, required=False).strip()
        raw_type = _text_field(item, ("question_type",), where, path, required=False)
        question_type = _question_type(raw_type)
        if raw_type.strip() and not question_type:
            raise ImportProblem(
                path, f"{where}: unknown question_type {raw_type!r} (one of: {', '.join(QuestionType.values)})"
            )
        synonyms = item.get("synonyms") or []
        if not isinstance(synonyms, list) or not all(isinstance(name, str) for name in synonyms):
            raise ImportProblem(path, f"{where}: 'synonyms' must be a list of text")
        raw_id = item.get("id")
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, str | int)):
            raise ImportProblem(path, f"{where}: 'id' must be text or a number, got {type(raw_id).__name__}")
        if not text or not title:
            records.skipped += 1
            continue
        focus = focus or title
        external_id = _clean_line(str(raw_id)) if raw_id is not None else _hash_id(title, focus)
        if not external_id:
            raise ImportProblem(path, f"{where}: 'id' is empty")
        if external_id in lines:
            raise ImportProblem(path, f"{where}: id {external_id!r} was already used on line {lines[external_id]}")
        lines[external_id] = number
        record = PassageRecord(
            external_id=external_id,
            title=title,
            focus=focus,
            synonyms=tuple(dict.fromkeys(name for name in map(_clean_line, synonyms) if name)),
            question_type=question_type,
            text=text,
            url=url,
        )
        _check_lengths(path, record, where)
        records.append(record)
    return records


def _hash_id(title: str, focus: str) -> str:
    key = f"{_clean_line(title).casefold()}\n{_clean_line(focus).casefold()}"
    return "sha1:" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()


# --- Markdown and plain-text leaflets -----------------------------------------------------------

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])|`)")
# Headings that say which question a section answers; the first keyword found (at the start of
# a word: "test" in "Tests and scans", not in "latest") wins.
_HEADING_TYPES = (
    (("symptom", "signs"), QuestionType.SYMPTOMS),
    (("treat", "medicine", "what can i do", "self-care", "self care", "managing"), QuestionType.TREATMENT),
    (("cause", "why do"), QuestionType.CAUSES),
    (("prevent", "avoid"), QuestionType.PREVENTION),
    (("diagnos", "test", "exam"), QuestionType.EXAMS),
    (("risk", "who gets", "who is"), QuestionType.SUSCEPTIBILITY),
    (("outlook", "prognosis", "recovery"), QuestionType.OUTLOOK),
    (("complication",), QuestionType.COMPLICATIONS),
    (("what is", "what are", "about", "overview"), QuestionType.INFORMATION),
)


def _plain(line: str) -> str:
    """Markdown inline marks out: passages are shown as text, never rendered."""
    return _EMPHASIS.sub("", _LINK.sub(r"\1", line)).rstrip()


def _heading_type(heading: str) -> str:
    lowered = heading.casefold()
    for keywords, question_type in _HEADING_TYPES:
        if any(re.search(rf"\b{re.escape(keyword)}", lowered) for keyword in keywords):
            return question_type.value
    return ""


def _focus_from_title(title: str) -> str:
    # "Hay fever: what you can do" and "Hay fever - a leaflet" are about hay fever.
    return re.split(r"\s*(?::|\s[-–—]\s)\s*", title, maxsplit=1)[0] or title


def _paragraph_groups(lines: list[str]) -> list[str]:
    paragraphs = "\n".join(lines).split("\n\n")
    groups: list[str] = []
    current = ""
    for paragraph in (clean_answer(p) for p in paragraphs):
        if not paragraph:
            continue
        if current and len(current) + len(paragraph) > PARAGRAPHS_PER_PASSAGE_CHARS:
            groups.append(current)
            current = ""
        current = f"{current}\n{paragraph}" if current else paragraph
    return [*groups, current] if current else groups


def read_document_file(path: Path, name: str | None = None) -> Records:
    """A leaflet's passages: one per heading, or groups of paragraphs when it has no headings.

    The title is the first heading, or the file name when there is none; the focus is the title
    (up to a colon or dash). ``external_id`` is "<name>#<n>", where ``name`` defaults to the file
    name and n counts the passages in order. A heading with no text under it adds nothing."""
    text = _read_text(path)
    if "\x00" in text:
        raise ImportProblem(path, "binary data, not a text document")
    title = ""
    sections: list[tuple[str, list[str]]] = [("", [])]  # (heading, lines), the first has no heading
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            heading_text = _plain(heading.group(2)).strip()
            if not title and len(heading.group(1)) == 1:
                title = heading_text
                continue
            sections.append((heading_text, []))
        else:
            sections[-1][1].append(_plain(line))
    title = title or re.sub(r"[_-]+", " ", path.stem).strip().capitalize()
    focus = _focus_from_title(title)
    name = name or path.name

    records = Records()
    for heading, lines in sections:
        # Without headings a long leaflet is cut into paragraph groups; under a heading, the
        # section is one passage (it answers one question).
        parts = _paragraph_groups(lines) if not heading else [clean_answer("\n".join(lines))]
        for part in parts:
            if not part:
                continue
            record = PassageRecord(
                external_id=f"{name}#{len(records) + 1}",
                title=heading or title,
                focus=focus,
                synonyms=(),
                question_type=_heading_type(heading),
                text=part,
                url="",
            )
            _check_lengths(path, record, f"passage {len(records) + 1}")
            records.append(record)
    if not records:
        raise ImportProblem(path, "no text to import")
    return records


# --- finding and reading files ------------------------------------------------------------------


def find_files(path: Path) -> tuple[list[Path], list[ImportProblem]]:
    """The importable files at ``path`` (itself, or under the folder ``path``, sorted), and the
    symbolic links found among them, each as a problem: links are never followed.

    A link inside an imported folder can point anywhere (``/etc/passwd``, another user's
    folder), and whoever can write the folder is not always whoever runs the import, so no link
    under the folder is read or walked into, wherever it points. ``path`` itself may be a link:
    the person importing named it. In a folder, files of other types, hidden files and READMEs
    or licences are left out."""
    if not path.exists():
        raise ImportProblem(path, "no such file or folder")
    if path.is_file():
        return [path], []
    files: list[Path] = []
    links: list[ImportProblem] = []
    # os.walk, not rglob: it lists links to folders without entering them, so each is reported.
    for folder, subfolders, names in os.walk(path, followlinks=False):
        here = Path(folder)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in list(subfolders):
            if (here / name).is_symlink():
                links.append(ImportProblem(here / name, "a symbolic link to a folder: not followed"))
        for name in names:
            file = here / name
            if name.startswith(".") or file.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            if file.stem.casefold() in NOT_KNOWLEDGE:
                continue
            if file.is_symlink():
                links.append(ImportProblem(file, "a symbolic link: not read"))
            elif file.is_file():
                files.append(file)
    return sorted(files), sorted(links, key=lambda problem: problem.path)


def iter_files(path: Path) -> list[Path]:
    """``path`` itself, or the importable files under the folder ``path``, sorted; symbolic
    links under the folder are left out (``find_files`` lists them)."""
    return find_files(path)[0]


def read_file(path: Path, name: str | None = None) -> Records:
    """The records of one file of any supported type; raises ImportProblem.

    ``name`` is the id prefix for leaflets (their path relative to the folder imported)."""
    suffix = path.suffix.lower()
    if suffix in MEDQUAD_SUFFIXES:
        return read_medquad_file(path)
    if suffix in JSONL_SUFFIXES:
        return read_jsonl_file(path)
    if suffix in DOCUMENT_SUFFIXES:
        return read_document_file(path, name=name)
    supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
    raise ImportProblem(path, f"unsupported file type {suffix or '(none)'!r}; use {supported} or a folder of them")


# --- importing ----------------------------------------------------------------------------------


@dataclass
class ImportReport:
    source: str
    files: int = 0  # files read without a problem
    added: int = 0  # new passages
    updated: int = 0  # passages whose title, focus, synonyms, type, text or URL changed
    unchanged: int = 0  # passages read again exactly as stored
    skipped: int = 0  # pairs or lines without an answer (or question), left out
    missing: int = 0  # passages of the source not in this import (kept unless delete_missing)
    deleted: int = 0  # of those, removed because delete_missing was asked for
    problems: list[tuple[Path, str]] = field(default_factory=list)  # files not imported, and why

    def __str__(self) -> str:
        text = (
            f"{self.source}: {self.files} files read, {self.added} passages added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.skipped} skipped (empty)"
        )
        if self.deleted:
            text += f", {self.deleted} deleted (no longer in the files)"
        elif self.missing:
            text += f", {self.missing} not in these files (kept)"
        if self.problems:
            text += f"; {len(self.problems)} files not imported"
        return text


Progress = Callable[[int, int], None]  # (files read so far, files in all)
_COMPARED = [f.name for f in fields(PassageRecord) if f.name != "external_id"]


def _values(record: PassageRecord) -> dict[str, str]:
    values = {name: getattr(record, name) for name in _COMPARED}
    values["synonyms"] = "\n".join(record.synonyms)
    return values


def import_knowledge(
    path: Path,
    source_name: str,
    *,
    publisher: str = "",
    url: str = "",
    licence: str = "",
    delete_missing: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the file or folder ``path`` into the KnowledgeSource ``source_name``.

    The source is created if missing; publisher, URL and licence, when given, replace its own.
    Every file is read before anything is written; files that cannot be read, and symbolic links
    under the folder (never followed), are listed in ``problems`` and nothing of them is written,
    while the rest are written in one transaction, matched by ``external_id``: new passages
    added, changed ones updated in place, the same left alone. With ``delete_missing`` (and no
    problems, since an unreadable file's passages would look missing) passages of the source
    that no file mentions any more are deleted. The knowledge version is bumped once, at the
    end, so every worker rebuilds its search index.

    Raises ImportProblem when ``path`` does not exist or holds no importable file, and ValueError
    for a source name, publisher, URL or licence the source's own fields would refuse (too long, or a
    URL that is not http or https: the admin shows it)."""
    _check_source_fields(source_name, publisher=publisher, url=url, licence=licence)
    files, links = find_files(path)
    if not files and not links:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ImportProblem(path, f"no files to import (looked for {supported})")
    report = ImportReport(source=source_name)
    report.problems += [(link.path, link.reason) for link in links]
    records = _read_all(files, path if path.is_dir() else path.parent, report, progress)
    if not report.files:
        return report  # nothing readable: not even an empty source is created
    records = dict(zip(records, unglue_records(records.values()), strict=True))

    with transaction.atomic():
        source, created = KnowledgeSource.objects.get_or_create(
            name=source_name, defaults={"publisher": publisher, "url": url, "licence": licence}
        )
        given = {"publisher": publisher, "url": url, "licence": licence}
        changed = {key: value for key, value in given.items() if value and getattr(source, key) != value}
        if not created and changed:
            for key, value in changed.items():
                setattr(source, key, value)
            source.save(update_fields=[*changed, "updated_at"])
        _write(source, records, report, delete_missing=delete_missing and not report.problems)
    # After the commit (unless the caller holds a transaction): a worker rebuilding sooner would read the old rows.
    versions.bump(versions.KNOWLEDGE)
    return report


def _check_source_fields(name: str, **given: str) -> None:
    """The source's fields as the admin would check them, before anything is read or written."""
    from django.core.exceptions import ValidationError

    candidate = KnowledgeSource(name=name, **given)
    try:
        candidate.full_clean(exclude=["name"] if KnowledgeSource.objects.filter(name=name).exists() else None)
    except ValidationError as error:
        reasons = "; ".join(
            f"--{field if field != 'name' else 'source'}: {' '.join(messages)}"
            for field, messages in error.message_dict.items()
        )
        raise ValueError(reasons) from error
    if given.get("url") and not given["url"].lower().startswith(("http://", "https://")):
        raise ValueError("--url: give an http:// or https:// address")


def unglue_records(records: Iterable[PassageRecord]) -> list[PassageRecord]:
    """``records`` with words their source ran together parted again ("pneumoniathe most common type"
    → "pneumonia—the most common type"), judged over all of them: a whole source imported at once
    (MedQuAD) has the word counts to tell; a few leaflets have not, and are left as they are."""
    records = list(records)
    glued = glued_words(record.text for record in records)
    return [replace(record, text=unglue(record.text, glued)) for record in records]


def _read_all(
    files: list[Path], base: Path, report: ImportReport, progress: Progress | None
) -> dict[str, PassageRecord]:
    """Every readable file's records by external_id; each unreadable file goes to ``report.problems``
    whole, as does a file reusing an id an earlier file already gave (the first keeps it)."""
    records: dict[str, PassageRecord] = {}
    read_from: dict[str, Path] = {}
    for done, file in enumerate(files, start=1):
        try:
            file_records = read_file(file, name=file.relative_to(base).as_posix())
            for record in file_records:
                if record.external_id in read_from:
                    raise ImportProblem(
                        file, f"the id {record.external_id!r} was already read from {read_from[record.external_id]}"
                    )
        except ImportProblem as problem:
            report.problems.append((problem.path, problem.reason))
        else:
            report.files += 1
            report.skipped += file_records.skipped
            for record in file_records:
                records[record.external_id] = record
                read_from[record.external_id] = file
        if progress is not None:
            progress(done, len(files))
    return records


def _leaflet_id(external_id: str) -> tuple[str, str] | None:
    """(the file's path, the passage's number) of a leaflet passage's id ("clinic/asthma.md#2"), else None."""
    path, hash_, number = external_id.rpartition("#")
    if not hash_ or not number.isdigit() or Path(path).suffix.lower() not in DOCUMENT_SUFFIXES:
        return None
    return path, number


def _file_name(path: str) -> str:
    return path.rpartition("/")[2]


def _as_stored(records: dict[str, PassageRecord], stored: Iterable[str]) -> dict[str, PassageRecord]:
    """``records`` with each leaflet's ids as an earlier import stored them. A leaflet's id starts
    with its path below the folder imported: importing the folder, then the file alone (or the other
    way round), names one file two ways. A file whose name is read once and that the source stores
    under exactly one other path, which this import does not read, keeps that path."""
    stored_paths: dict[str, set[str]] = defaultdict(set)  # file name -> the paths stored under it
    for leaflet in filter(None, map(_leaflet_id, stored)):
        stored_paths[_file_name(leaflet[0])].add(leaflet[0])
    read_paths = {leaflet[0] for leaflet in filter(None, map(_leaflet_id, records))}
    read_names = Counter(map(_file_name, read_paths))
    renamed: dict[str, PassageRecord] = {}
    for external_id, record in records.items():
        if (leaflet := _leaflet_id(external_id)) is not None:
            path, number = leaflet
            name = _file_name(path)
            others = stored_paths[name] - read_paths
            if read_names[name] == 1 and path not in stored_paths[name] and len(others) == 1:
                external_id = f"{others.pop()}#{number}"
                record = replace(record, external_id=external_id)
        renamed[external_id] = record
    return renamed


def _write(
    source: KnowledgeSource, records: dict[str, PassageRecord], report: ImportReport, delete_missing: bool
) -> None:
    existing = {
        row["external_id"]: row
        for row in Passage.objects.filter(source=source).values("pk", "external_id", *_COMPARED).iterator()
    }
    records = _as_stored(records, existing.keys())
    to_create: list[Passage] = []
    now = timezone.now()  # update() skips auto_now: set by hand, so "recently changed" stays true
    for external_id, record in records.items():
        values = _values(record)
        row = existing.get(external_id)
        if row is None:
            to_create.append(Passage(source=source, external_id=external_id, **values))
        elif any(row[name] != value for name, value in values.items()):
            # One UPDATE per changed row, not bulk_update: its CASE WHEN statements measured 1.3–1.9 ms
            # a row on SQLite (3,000 changed MedQuAD passages: 4–6 s), these 0.3 ms in one transaction.
            Passage.objects.filter(pk=row["pk"]).update(**values, updated_at=now)
            report.updated += 1
        else:
            report.unchanged += 1
    Passage.objects.bulk_create(to_create, batch_size=BATCH_SIZE)
    report.added = len(to_create)

    missing = [row["pk"] for external_id, row in existing.items() if external_id not in records]
    report.missing = len(missing)
    if delete_missing and missing:
        for start in range(0, len(missing), BATCH_SIZE):
            _, per_model = Passage.objects.filter(pk__in=missing[start : start + BATCH_SIZE]).delete()
            report.deleted += per_model.get(Passage._meta.label, 0)
