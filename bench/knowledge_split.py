"""The knowledge split evaluation: does MedBot answer from its knowledge, and only from it?

MedQuAD (read in place at run time, never copied into the repository) is split **by document**
(one XML file: one focus, all its question/answer pairs), seeded, into a knowledge part and a
held-out part. The knowledge part, with the curated entries, becomes an in-memory
``KnowledgeIndex`` that the answer pipeline is pinned to (``retriever.pinned``). Each held-out
document's questions are asked again **in new words** (``paraphrase``: our own templates per
question type, focus in lower case), in two groups:

- ``covered``: the held-out document's focus (or a synonym) is a focus or synonym of a
  knowledge-part document, or the name of a curated entry: the knowledge base can answer it;
- ``uncovered``: it is nobody's focus: the honest answer is "no reliable answer".

Configurations (``CONFIGS``): ``rules`` (the curated entries alone, no model), ``extract`` (the
knowledge base, no model), ``model`` (knowledge base + model + faithfulness gate) and
``model-nogate`` (the gate off: the ablation). Per configuration and group: answered rate,
top-1 focus match (the best passage's focus is the held-out document's), the share of final
answer sentences unsupported by the cited passages (``inference.grounding.check_sentences``),
answers naming a number or name absent from their passages, ROUGE-L F1 against the held-out
reference answer, latency p50/p95, and for uncovered topics the honest "no reliable answer" rate.

``only_retrieval`` skips the pipeline and measures the search alone (answered = any passage
found, focus match, search latency): seconds for the whole held-out set.

Results carry the paraphrased questions and the answers (MedQuAD text, CC BY 4.0): they go to
bench/results/knowledge-split-*, which is gitignored. Reference answers are never written out.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from django.conf import settings
from django.test.utils import override_settings
from tqdm import tqdm

from bench.metrics import Report, percentile, rouge_l_f1
from inference import pipeline
from inference.engine import get_manager
from inference.grounding import check_sentences
from inference.models import EmergencyRule, FallbackRule
from inference.retrieval import RULE_PREFIX, citation_for, load_aliases, load_documents, retriever, with_aliases
from knowledge.importers import ImportProblem, PassageRecord, iter_files, read_medquad_file, unglue_records
from knowledge.search import GENERAL_GROUPS, GENERAL_PEOPLE, Document, Hit, KnowledgeIndex, focus_variants, name_form
from knowledge.text import STOPWORDS, phrase

MEDQUAD_SOURCE = "MedQuAD"
MEDQUAD_PUBLISHER = "NIH"
MEDQUAD_CREDIT = (
    "MedQuAD: Ben Abacha & Demner-Fushman, 'A question-entailment approach to question answering', "
    "BMC Bioinformatics 2019 (CC BY 4.0)"
)
COVERED, UNCOVERED = "covered", "uncovered"
GROUPS = (COVERED, UNCOVERED)
ANSWERED_SOURCES = frozenset({pipeline.Source.MODEL, pipeline.Source.EXTRACT, pipeline.Source.RULE})

# The acceptance bars of issue 12 (per group): (metric, comparison, bar).
BARS: dict[str, tuple[tuple[str, str, float], ...]] = {
    COVERED: (
        ("answered", ">=", 0.90),
        ("focus_match", ">=", 0.85),
        ("unsupported_sentences", "<=", 0.02),
        ("answers_with_missing_names", "<=", 0),
    ),
    UNCOVERED: (("honest_unavailable", ">=", 0.95),),
}

# --- paraphrases -------------------------------------------------------------------------------

# Our own wording for each MedQuAD question type, the way a person might ask it: never MedQuAD's
# "What are the symptoms of X ?" form. ``{focus}`` is the focus in lower case.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "information": (
        "can you explain what {focus} is?",
        "what does it mean to have {focus}?",
        "tell me about {focus}",
        "I was just told I have {focus}, what is that?",
        "what exactly is {focus}?",
    ),
    "symptoms": (
        "what signs should I watch for with {focus}?",
        "how would I know if I had {focus}?",
        "what does {focus} feel like?",
        "what are the warning signs of {focus}?",
        "which symptoms does {focus} cause?",
    ),
    "treatment": (
        "how do doctors treat {focus}?",
        "what can be done for {focus}?",
        "is there a cure for {focus}?",
        "what medicines help with {focus}?",
        "how is {focus} managed?",
    ),
    "causes": (
        "why do people get {focus}?",
        "what leads to {focus}?",
        "what is behind {focus}, what causes it?",
        "what triggers {focus}?",
    ),
    "inheritance": (
        "can {focus} be passed down in families?",
        "is {focus} hereditary?",
        "if I have {focus}, could my children inherit it?",
        "does {focus} run in families?",
    ),
    "frequency": (
        "how common is {focus}?",
        "how many people have {focus}?",
        "how rare is {focus}?",
    ),
    "genetic changes": (
        "which genes are involved in {focus}?",
        "what mutations lead to {focus}?",
        "what genetic change is behind {focus}?",
    ),
    "exams and tests": (
        "how do doctors find out if someone has {focus}?",
        "what tests check for {focus}?",
        "how can {focus} be diagnosed?",
    ),
    "research": (
        "are there clinical trials for {focus}?",
        "what studies are looking at {focus}?",
        "is any research being done on {focus}?",
    ),
    "outlook": (
        "what is the prognosis with {focus}?",
        "can people recover from {focus}?",
        "what are the chances for someone who has {focus}?",
    ),
    "susceptibility": (
        "who is at risk of getting {focus}?",
        "who gets {focus}?",
        "what are the risk factors for {focus}?",
    ),
    "prevention": (
        "how can I avoid getting {focus}?",
        "is there a way to prevent {focus}?",
        "what lowers the risk of {focus}?",
    ),
    "stages": (
        "how is {focus} staged?",
        "what stages does {focus} go through?",
    ),
    "complications": (
        "what complications can {focus} lead to?",
        "what problems can {focus} cause later on?",
    ),
    "considerations": (
        "what should I keep in mind about {focus}?",
        "is there anything special to know about living with {focus}?",
    ),
    "support groups": (
        "where can I find support for {focus}?",
        "are there groups for people with {focus}?",
    ),
}
GENERIC_TEMPLATES = (
    "what should I know about {focus}?",
    "can you tell me more about {focus}?",
)


def paraphrase(question_type: str, focus: str, original: str, rng: random.Random) -> tuple[str, str]:
    """(template, question): the question asked in new words, one of our templates for its
    type chosen by ``rng``, never the original question (compared as normalised words)."""
    focus = " ".join(focus.split()).lower()
    usable = [
        template
        for templates in (TEMPLATES.get(question_type, GENERIC_TEMPLATES), GENERIC_TEMPLATES)
        for template in templates
        if phrase(template.format(focus=focus)) != phrase(original)
    ]
    own = [t for t in TEMPLATES.get(question_type, GENERIC_TEMPLATES) if t in usable]
    template = rng.choice(own or usable)
    question = template.format(focus=focus)
    return template, question[:1].upper() + question[1:]


# --- the corpus and its split --------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """What a document is about, in comparable form (``knowledge.text.phrase``): its focus (as
    written, without brackets, without MedQuAD's "What I need to know about") and its synonyms.

    Two documents share a topic when one's focus is among the other's names. Synonym against
    synonym does not count: MedQuAD lists broad groups as synonyms ("Peroxisome disorder"), and
    two diseases of one group are not the same topic. A focus that joins names ("Insulin
    Resistance and Prediabetes") is the topic of a document that has every one of them among its
    names (a curated entry whose triggers are "insulin resistance" and "prediabetes"); names each
    of a different document ("neuropathy, ataxia, and retinitis pigmentosa") make another topic."""

    focus: frozenset[str]
    synonyms: frozenset[str] = frozenset()
    parts: frozenset[str] = frozenset()  # the names a focus joins with "and", when it does

    @property
    def all(self) -> frozenset[str]:
        return self.focus | self.synonyms

    def matches(self, other: Names) -> bool:
        if self.focus & other.all or other.focus & self.all:
            return True
        if (self.parts and self.parts <= other.all) or (other.parts and other.parts <= self.all):
            return True
        return any(garbled_twins(a, b) for a in self.focus for b in other.all) or any(
            garbled_twins(a, b) for a in other.focus for b in self.all
        )


# MedQuAD drops accented letters from some names: "Klver-Bucy" for Klüver-Bucy, "Henoch-Schnlein",
# "Behet", "Mnire", "Sjgren", "Waldenstrm", where other documents write "Kluver", "Schonlein",
# "Behcet", "Sjogren". The letters those lose, as the other documents spell them.
DROPPED_LETTERS = "eouc"
_DROPPED = re.compile(f"[{DROPPED_LETTERS}]")
MAX_DROPPED = 2
_VOWELS = frozenset("aeiouy")


def _garble_key(name: str) -> str:
    """A comparable name with the letters MedQuAD may have dropped taken out (first letters kept)."""
    return " ".join(sorted(word[:1] + _DROPPED.sub("", word[1:]) for word in name.split()))


def _dropped_from(short: str, long: str) -> bool:
    """Whether ``short`` is ``long`` with one or two of DROPPED_LETTERS taken out, neither its first
    nor its last letter ("Tietz" and "Tietze" are two syndromes), both words of letters, with a vowel
    left ("lms" is initials). A four-letter word may only have lost a vowel between two consonants
    ("Lken" for Løken; "CACH" and "COACH", "MADD" and "MCADD" are initials of different diseases)."""
    if not 0 < len(long) - len(short) <= MAX_DROPPED or len(short) < 4 or not (short + long).isalpha():
        return False
    if short[0] != long[0] or short[-1] != long[-1] or not set(short) & _VOWELS:
        return False
    matched = 0
    for place, letter in enumerate(long):
        if matched < len(short) and letter == short[matched]:
            matched += 1
        elif not _droppable(long, place, short_word=len(short) == 4):
            return False
    return matched == len(short)


def _droppable(word: str, place: int, short_word: bool) -> bool:
    letter = word[place]
    if not 0 < place < len(word) - 1:
        return False  # a first or last letter
    if short_word:
        return letter in _VOWELS and letter in DROPPED_LETTERS and not {word[place - 1], word[place + 1]} & _VOWELS
    return letter in DROPPED_LETTERS


def garbled_twins(a: str, b: str) -> bool:
    """Whether two comparable names are one name, one of them with accented letters dropped: every
    word the same but one or two, each the other's word with one or two of DROPPED_LETTERS lost.
    "fraser syndrom" and "frasier syndrom" are two syndromes ("i" is not among the letters)."""
    if a == b or _garble_key(a) != _garble_key(b):
        return False
    only_a = sorted(set(a.split()) - set(b.split()))
    only_b = sorted(set(b.split()) - set(a.split()))
    if not only_a or len(only_a) != len(only_b) or len(only_a) > 2:
        return False
    return all(any(_dropped_from(x, y) or _dropped_from(y, x) for y in only_b) for x in only_a)


_LEAFLET_TITLE = re.compile(r"^what i need to know about\s+", re.I)


def comparable(name: str) -> str:
    """A name as two documents' names are compared: its content words (``knowledge.text``'s
    stems), "type" before a number left out as the search leaves it out, in any order:
    "spastic paraplegia type 15" is "Spastic paraplegia 15", "Polyglucosan body disease, adult"
    is "adult polyglucosan body disease", "palmoplantar keratoderma with deafness" is
    "Keratoderma palmoplantar deafness" (GARD writes names both ways)."""
    words = name_form(phrase(name).split())
    return " ".join(sorted({w for w in words if w not in STOPWORDS}))  # single letters count: "hepatitis c"


# "... in Men", "... in Women": asked about, the general topic's passages answer it (the search's
# GENERAL_GROUPS); a page titled so does not answer the general question.
_ASKED_FOR_GROUP = re.compile(rf"\s+(?:in|for)\s+(?:{'|'.join(sorted(GENERAL_GROUPS))}|adult)$", re.I)


def _focus_forms(focus: str, asked: bool = False) -> set[str]:
    without = re.sub(r"\s*\([^)]*\)", "", focus).strip()
    bare = _LEAFLET_TITLE.sub("", without)
    # "Kidney Stones in Adults" is about kidney stones, as the search reads it (GENERAL_GROUPS).
    general = (_ASKED_FOR_GROUP if asked else GENERAL_PEOPLE).sub("", bare)
    return {name for name in map(comparable, (focus, without, bare, general)) if name}


_JOINED_NAMES = re.compile(r"\s*,\s*and\s+|\s*,\s*|\s+and\s+", re.I)


def _parts(focus: str) -> frozenset[str]:
    """The names a focus joins: "Overweight and Obesity", "Diabetes, Heart Disease, and Stroke"."""
    without = _LEAFLET_TITLE.sub("", re.sub(r"\s*\([^)]*\)", "", focus).strip())
    parts = frozenset(name for name in map(comparable, _JOINED_NAMES.split(without)) if name)
    return parts if len(parts) >= 2 and " and " in f" {without.lower()} " else frozenset()


def names_of(focus: str, synonyms: Iterable[str] = (), asked: bool = False) -> Names:
    """A focus and its synonyms as ``Names``. ``asked``: the names of a held-out document, whose
    questions name its focus ("urinary incontinence in men" is answered by the general topic)."""
    return Names(
        frozenset(_focus_forms(focus, asked)),
        frozenset(name for name in map(comparable, synonyms) if name),
        _parts(focus),
    )


def document_names(document: Document, triggers_cover: bool = True) -> Names:
    """The names a knowledge document is about. A curated entry's "synonyms" are its trigger
    phrases (symptoms, slang), not names of its topic: its title and the title's parts count.
    With ``triggers_cover`` its triggers count too: the curators declared that the entry answers
    questions about them ("syncope" for the fainting entry)."""
    if document.key.startswith(RULE_PREFIX) and triggers_cover:
        return Names(
            frozenset(name for name in map(comparable, focus_variants(document.focus)) if name)
            | frozenset(name for name in map(comparable, document.synonyms) if name)
        )
    if document.key.startswith(RULE_PREFIX):
        # "Sleep problems and insomnia" names two topics.
        parts = {part for variant in focus_variants(document.focus) for part in re.split(r"\s+and\s+", variant)}
        return Names(frozenset(name for name in map(comparable, focus_variants(document.focus) | parts) if name))
    # A knowledge passage goes by the names the search gives it: "Parasites - Lymphatic
    # Filariasis" is about lymphatic filariasis, "... (also known as Roundworm Infection)" too.
    names = names_of(document.focus, document.synonyms)
    variants = frozenset(name for name in map(comparable, focus_variants(document.focus)) if name)
    return Names(names.focus | variants, names.synonyms)


@dataclass(frozen=True)
class CorpusDocument:
    """One MedQuAD file: a focus and its question/answer pairs."""

    name: str  # the path under the MedQuAD folder: "2_GARD_QA/0000004.xml"
    focus: str
    synonyms: tuple[str, ...]
    records: tuple[PassageRecord, ...]

    def names(self) -> Names:
        """Its names as its questions ask them (``names_of``'s ``asked``)."""
        return names_of(self.focus, self.synonyms, asked=True)


def read_corpus(path: Path) -> tuple[list[CorpusDocument], list[tuple[str, str]]]:
    """Every MedQuAD file under ``path`` with at least one answered pair, in path order, and the
    files that could not be read (name, reason). Raises ImportProblem for a missing path."""
    base = path if path.is_dir() else path.parent
    documents: list[CorpusDocument] = []
    problems: list[tuple[str, str]] = []
    for file in iter_files(path):
        if file.suffix.lower() != ".xml":
            continue
        name = file.relative_to(base).as_posix()
        try:
            records = read_medquad_file(file)
        except ImportProblem as problem:
            problems.append((name, problem.reason))
            continue
        if records:
            first = records[0]
            documents.append(CorpusDocument(name, first.focus, first.synonyms, tuple(records)))
    # As the importer does: the words MedQuAD ran together, parted over the whole corpus.
    mended = iter(unglue_records(record for document in documents for record in document.records))
    documents = [replace(document, records=tuple(next(mended) for _ in document.records)) for document in documents]
    return documents, problems


def split_documents(
    documents: Sequence[CorpusDocument], heldout_share: float, seed: int
) -> tuple[list[CorpusDocument], list[CorpusDocument]]:
    """(knowledge part, held-out part), whole documents on either side, the same for a seed.
    At least one document is held out and one kept, when there are two."""
    if not 0 < heldout_share < 1:
        raise ValueError(f"--heldout-share must be between 0 and 1, got {heldout_share}")
    ordered = sorted(documents, key=lambda d: d.name)
    count = min(max(1, round(len(ordered) * heldout_share)), max(0, len(ordered) - 1))
    held = set(random.Random(seed).sample(range(len(ordered)), count))
    knowledge = [d for i, d in enumerate(ordered) if i not in held]
    heldout = [d for i, d in enumerate(ordered) if i in held]
    return knowledge, heldout


def passage_documents(documents: Sequence[CorpusDocument]) -> list[Document]:
    """The knowledge part as search documents, built as ``inference.retrieval.load_documents``
    builds them for imported passages (``with_aliases`` adds the curators' aliases)."""
    return [
        Document(
            key=f"passage:{number}",
            title=record.title,
            focus=record.focus,
            text=record.text,
            synonyms=record.synonyms,
            question_type=record.question_type,
            url=record.url,
            source=MEDQUAD_SOURCE,
            publisher=MEDQUAD_PUBLISHER,
        )
        for number, record in enumerate((r for d in documents for r in d.records), start=1)
    ]


def curated_documents() -> list[Document]:
    """The enabled curated entries from the database, as the live index holds them."""
    return [document for document in load_documents() if document.key.startswith(RULE_PREFIX)]


@dataclass(frozen=True)
class HeldOutQuestion:
    id: str  # the pair's external_id: "GARD/0000004/1"
    document: str  # the MedQuAD file
    group: str  # covered or uncovered
    question: str  # our paraphrase
    question_type: str
    focus: str
    names: Names  # the focus and synonyms, comparable
    template: str  # the paraphrase template used, for failure rates per wording
    covered_by: tuple[str, ...]  # the knowledge foci with the same name (the first few)
    name_known: bool  # the knowledge base knows the focus by the name the question uses
    reference: str = field(repr=False, default="")  # the held-out answer: scored, never written out


def heldout_questions(
    heldout: Sequence[CorpusDocument], knowledge: Sequence[Document], seed: int, triggers_cover: bool = True
) -> list[HeldOutQuestion]:
    """Every pair of the held-out documents, paraphrased, labelled covered or uncovered by
    whether the knowledge documents (passages and curated entries) share a name with it."""
    # name → knowledge foci: by any of their names, and by their focus alone (see Names).
    by_any: dict[str, list[str]] = {}
    by_focus: dict[str, list[str]] = {}
    for document in knowledge:
        names = document_names(document, triggers_cover)
        for table, keys in ((by_any, names.all), (by_focus, names.focus)):
            for name in keys:
                foci = table.setdefault(name, [])
                if document.focus not in foci:
                    foci.append(document.focus)
    twins: dict[str, list[str]] = {}  # garble key -> the knowledge names with it (see garbled_twins)
    for name in by_any:
        twins.setdefault(_garble_key(name), []).append(name)

    def same_names(name: str) -> list[str]:
        return [name, *(t for t in twins.get(_garble_key(name), ()) if garbled_twins(name, t))]

    rng = random.Random(seed)
    questions = []
    for document in heldout:
        names = document.names()
        found = [f for name in sorted(names.focus) for same in same_names(name) for f in by_any.get(same, ())]
        found += [f for name in sorted(names.all) for same in same_names(name) for f in by_focus.get(same, ())]
        if names.parts:  # a knowledge document with every joined name among its own
            found += sorted(set.intersection(*(set(by_any.get(part, ())) for part in names.parts)))
        covered_by = tuple(dict.fromkeys(found))[:5]
        name_known = any(name in by_any for name in names.focus)
        # Nobody asks "how is what I need to know about kidney stones diagnosed?" (NIDDK's titles).
        spoken = _LEAFLET_TITLE.sub("", document.focus) or document.focus
        for record in document.records:
            template, question = paraphrase(record.question_type, spoken, record.title, rng)
            questions.append(
                HeldOutQuestion(
                    id=record.external_id,
                    document=document.name,
                    group=COVERED if covered_by else UNCOVERED,
                    question=question,
                    question_type=record.question_type,
                    focus=document.focus,
                    names=names,
                    template=template,
                    covered_by=covered_by,
                    name_known=name_known,
                    reference=record.text,
                )
            )
    return questions


# --- configurations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitConfig:
    name: str
    passages: bool  # the MedQuAD knowledge part is in the index (else: the curated entries alone)
    use_model: bool
    gate: bool
    description: str


CONFIGS: dict[str, SplitConfig] = {
    c.name: c
    for c in (
        SplitConfig("rules", False, False, True, "curated entries only, no model"),
        SplitConfig("extract", True, False, True, "knowledge base, no model: curated entries and passage extracts"),
        SplitConfig("model", True, True, True, "knowledge base + model, faithfulness gate on"),
        SplitConfig("model-nogate", True, True, False, "knowledge base + model, gate off (ablation)"),
    )
}


class ConfigSkipped(Exception):
    """A configuration that cannot run here (the model did not load)."""


def _no_hit(pk: int) -> None:
    """Stands in for ``count_hit``: hit counts are the curators' usage data, not ours."""


@contextmanager
def configured(use_model: bool, max_new_tokens: int | None = None) -> Iterator[str]:
    """The process set up for one configuration; yields the served model version ("" without).

    The answer cache is off (every answer is computed), hit counts are left alone, and with
    ``use_model`` the real engine is started and waited for (a test may have installed a
    stand-in at ``get``). Raises ConfigSkipped when the model does not load; resets the engine."""
    manager = get_manager()
    overrides: dict[str, Any] = {"MEDBOT_ANSWER_CACHE_SECONDS": 0, "MEDBOT_LOAD_MODEL": use_model}
    if max_new_tokens is not None:
        overrides["MEDBOT_MAX_NEW_TOKENS"] = max_new_tokens
    with ExitStack() as stack:
        stack.enter_context(override_settings(**overrides))
        stack.enter_context(mock.patch.object(FallbackRule, "count_hit", staticmethod(_no_hit)))
        stack.enter_context(mock.patch.object(EmergencyRule, "count_hit", staticmethod(_no_hit)))
        stack.callback(manager.reset)
        version = ""
        if use_model:
            engine = manager.get()
            if engine is None:
                manager.start(wait=True)
                engine = manager.get()
            if engine is None:
                raise ConfigSkipped(f"the model did not load: {manager.status()['error'] or manager.state}")
            version = engine.version
        yield version


# --- answering and scoring -----------------------------------------------------------------------


@dataclass
class Row:
    """One held-out question under one configuration."""

    config: str
    id: str
    group: str
    question_type: str
    focus: str
    question: str
    template: str
    name_known: bool  # the knowledge base knows the focus by the name the question uses
    required_words: list[str]  # words the index requires a passage to mention, beyond the focus named
    source: str  # the pipeline's source; "retrieval" rows (only_retrieval) say "found" or "none"
    answered: bool  # a model, extract or rule answer: not "no reliable answer", not emergency
    top_title: str  # the best passage (retriever.search), "" when none
    top_focus: str
    top_source: str
    focus_match: bool  # answered, and the best passage's focus is the question's
    fallback: str
    sentences: int  # sentences in the final answer (answered only)
    unsupported: int  # of those, not supported by the cited passages
    missing: list[str]  # numbers and names in the answer absent from its passages
    rouge_l: float | None  # F1 against the held-out reference (answered only)
    latency_ms: float
    search_ms: float
    tokens: int
    answer: str


def _cited_texts(result: pipeline.AnswerResult, hits: Sequence[Hit], by_title: dict[str, list[Document]]) -> list[str]:
    """The texts of the passages an answer cites: the hits it was built from, else by title."""
    texts = []
    for citation in result.citations:
        found = [h.document for h in hits if citation_for(h.document).as_dict() == citation]
        found = found or [d for d in by_title.get(citation["title"], []) if d.url == citation["url"]]
        texts += [document.text for document in found[:1]]
    return texts


def _required_words(index: KnowledgeIndex, question: str) -> list[str]:
    """The "specific" words of the question outside the focus names it uses: a diagnosis aid
    (a passage must mention each of them to be found)."""
    named = {word for name in index.named_foci(question).values() for word in name.split()}
    return sorted(index.specific_words(question) - named)


def score_answer(
    config: str,
    question: HeldOutQuestion,
    hits: Sequence[Hit],
    search_ms: float,
    result: pipeline.AnswerResult | None,
    index: KnowledgeIndex,
    by_title: dict[str, list[Document]],
    triggers_cover: bool = True,
) -> Row:
    """One row. Without ``result`` (only_retrieval) answered means "a passage was found". The
    best passage matches the focus by the same names that decided the question was covered."""
    top = hits[0].document if hits else None
    answered = result.source in ANSWERED_SOURCES if result is not None else bool(hits)
    row = Row(
        config=config,
        id=question.id,
        group=question.group,
        question_type=question.question_type,
        focus=question.focus,
        question=question.question,
        template=question.template,
        name_known=question.name_known,
        required_words=_required_words(index, question.question),
        source=result.source if result is not None else ("found" if hits else "none"),
        answered=answered,
        top_title=top.title if top else "",
        top_focus=top.focus if top else "",
        top_source=top.source if top else "",
        focus_match=bool(answered and top and document_names(top, triggers_cover).matches(question.names)),
        fallback=str(result.fallback) if result is not None else "",
        sentences=0,
        unsupported=0,
        missing=[],
        rouge_l=None,
        latency_ms=float(result.latency_ms) if result is not None else round(search_ms, 2),
        search_ms=round(search_ms, 2),
        tokens=result.tokens if result is not None else 0,
        answer=result.text if result is not None else "",
    )
    if result is not None and answered:
        checks = check_sentences(
            result.text, _cited_texts(result, hits, by_title), question.question, index.is_specific
        )
        row.sentences = len(checks)
        row.unsupported = sum(not check.supported for check in checks)
        row.missing = list(dict.fromkeys(word for check in checks for word in check.missing))
        row.rouge_l = round(rouge_l_f1(result.text, question.reference), 4)
    return row


def _group_by(rows: Iterable[Row], key: Callable[[Row], str]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups


def _rate(hits: int, total: int) -> dict[str, Any]:
    return {"rate": round(hits / total, 4) if total else None, "hits": hits, "n": total}


def summarise(rows: Sequence[Row]) -> dict[str, Any]:
    """One group's numbers under one configuration.

    focus_match counts over all the group's questions (an unanswered one is a miss);
    unsupported_sentences pools the sentences of every answered question; ROUGE-L is the mean
    over answered questions; honest_unavailable is the share answered "no reliable answer"."""
    n = len(rows)
    answered = [row for row in rows if row.answered]
    sentences = sum(row.sentences for row in answered)
    scored = [row.rouge_l for row in answered if row.rouge_l is not None]
    latencies = [row.latency_ms for row in rows]
    searches = [row.search_ms for row in rows]
    return {
        "questions": n,
        "answered": _rate(len(answered), n),
        "focus_match": _rate(sum(row.focus_match for row in rows), n),
        "focus_match_of_answered": _rate(sum(row.focus_match for row in answered), len(answered)),
        # Covered through a synonym only the held-out document lists ("X type II" = "Meige
        # disease"): the question names X, which no knowledge document mentions.
        "answered_name_known": _rate(sum(r.answered for r in rows if r.name_known), sum(r.name_known for r in rows)),
        "focus_match_name_known": _rate(
            sum(r.focus_match for r in rows if r.name_known), sum(r.name_known for r in rows)
        ),
        "unsupported_sentences": _rate(sum(row.unsupported for row in answered), sentences),
        "answers_with_missing_names": sum(bool(row.missing) for row in answered),
        "rouge_l": {"mean": round(sum(scored) / len(scored), 4) if scored else None, "n": len(scored)},
        "honest_unavailable": _rate(sum(row.source in {pipeline.Source.UNAVAILABLE, "none"} for row in rows), n),
        "sources": dict(sorted(Counter(row.source for row in rows).items())),
        "answered_from": dict(sorted(Counter(row.top_source for row in answered).items())),
        "by_template": {
            template: {
                "answered": _rate(sum(r.answered for r in group), len(group)),
                "focus_match": _rate(sum(r.focus_match for r in group), len(group)),
            }
            for template, group in sorted(_group_by(rows, lambda r: r.template).items())
        },
        "fallbacks": dict(sorted(Counter(row.fallback for row in rows if row.fallback).items())),
        "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
        "search_ms": {"p50": percentile(searches, 50), "p95": percentile(searches, 95)},
    }


def check_bars(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each acceptance bar with the measured value and whether it holds (None: nothing measured)."""
    checks = []
    for group, bars in BARS.items():
        numbers = summary.get(group)
        if not numbers or not numbers["questions"]:
            continue
        for metric, comparison, bar in bars:
            value = numbers[metric]
            value = value["rate"] if isinstance(value, dict) else value
            holds = None if value is None else (value >= bar if comparison == ">=" else value <= bar)
            checks.append(
                {"group": group, "metric": metric, "bar": f"{comparison} {bar:g}", "value": value, "holds": holds}
            )
    return checks


# --- running -------------------------------------------------------------------------------------


@dataclass
class SplitOptions:
    medquad: Path
    configs: list[str] = field(default_factory=lambda: ["rules", "extract"])
    heldout_share: float = 0.1  # share of MedQuAD documents held out
    seed: int = 0  # the split, the paraphrases and the model sample
    limit: int | None = 40  # questions per group for the model configurations (None: all)
    only_retrieval: bool = False  # search only: answered / focus match / latency in seconds
    max_new_tokens: int | None = None  # None: MEDBOT_MAX_NEW_TOKENS
    progress: bool = True  # a tqdm bar on stderr
    triggers_cover: bool = True  # curated trigger phrases count as names of the topics they cover


@dataclass
class ConfigOutcome:
    config: str
    description: str
    skipped: str = ""
    model_version: str = ""
    questions: int = 0
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)  # group → numbers
    bars: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0


# The report of a run: the same shape as the labelled set's.
SplitReport = Report


def model_sample(questions: Sequence[HeldOutQuestion], limit: int | None, seed: int) -> list[HeldOutQuestion]:
    """At most ``limit`` questions of each group, drawn with ``seed``, in their original order:
    generation costs seconds an answer on a small CPU."""
    if limit is None:
        return list(questions)
    chosen: set[str] = set()
    rng = random.Random(seed)
    for group in GROUPS:
        ids = [q.id for q in questions if q.group == group]
        chosen.update(rng.sample(ids, min(limit, len(ids))))
    return [q for q in questions if q.id in chosen]


def run_config(
    config: SplitConfig,
    questions: Sequence[HeldOutQuestion],
    index: KnowledgeIndex,
    options: SplitOptions,
) -> tuple[ConfigOutcome, list[Row]]:
    outcome = ConfigOutcome(config.name, config.description, questions=len(questions))
    started = time.monotonic()
    by_title: dict[str, list[Document]] = {}
    for document in index.documents:
        by_title.setdefault(citation_for(document).title, []).append(document)
    rows: list[Row] = []
    bar = tqdm(questions, desc=config.name, unit="q", disable=not options.progress)
    try:
        with ExitStack() as stack:
            if not options.only_retrieval:
                outcome.model_version = stack.enter_context(configured(config.use_model, options.max_new_tokens))
            stack.enter_context(retriever.pinned(index))
            for question in bar:
                began = time.perf_counter()
                hits = index.search(question.question, limit=pipeline.PASSAGES_PER_ANSWER)
                search_ms = (time.perf_counter() - began) * 1000
                result = None
                if not options.only_retrieval:
                    result = pipeline.answer(question.question, use_model=config.use_model, gate=config.gate)
                rows.append(
                    score_answer(
                        config.name, question, hits, search_ms, result, index, by_title, options.triggers_cover
                    )
                )
    except ConfigSkipped as reason:
        outcome.skipped = str(reason)
        return outcome, []
    finally:
        bar.close()
    outcome.summary = {group: summarise([r for r in rows if r.group == group]) for group in GROUPS}
    outcome.bars = check_bars(outcome.summary)
    outcome.wall_seconds = round(time.monotonic() - started, 2)
    return outcome, rows


def evaluate_split(options: SplitOptions, log: Callable[[str], None] = print) -> SplitReport:
    """Read, split, index, ask. Raises ValueError for bad options and ImportProblem for a
    MedQuAD path that cannot be read; a configuration that cannot run is skipped with its reason."""
    unknown = [name for name in options.configs if name not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    if options.limit is not None and options.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {options.limit}")
    started = time.monotonic()
    corpus, problems = read_corpus(options.medquad)
    if len(corpus) < 2:
        raise ValueError(f"{options.medquad}: need at least two MedQuAD documents with answers, found {len(corpus)}")
    for name, reason in problems:
        log(f"skipped {name}: {reason}")
    knowledge, heldout = split_documents(corpus, options.heldout_share, options.seed)
    curated = curated_documents()
    if not curated:
        log("warning: no curated entries in the database (run `manage.py load_curated_data`)")
    began = time.monotonic()
    passages = with_aliases(passage_documents(knowledge), load_aliases())  # as the live index has them
    full_index = KnowledgeIndex([*curated, *passages])
    index_seconds = time.monotonic() - began
    rules_index = KnowledgeIndex(curated)
    questions = heldout_questions(heldout, full_index.documents, options.seed, options.triggers_cover)

    outcomes: list[ConfigOutcome] = []
    rows: list[Row] = []
    for name in dict.fromkeys(options.configs):
        config = CONFIGS[name]
        asked = model_sample(questions, options.limit, options.seed) if config.use_model else questions
        outcome, config_rows = run_config(config, asked, full_index if config.passages else rules_index, options)
        if outcome.skipped:
            log(f"skipped {name}: {outcome.skipped}")
        outcomes.append(outcome)
        rows += config_rows
    groups = Counter(q.group for q in questions)
    passage_foci = {document.focus for document in passages}
    meta = {
        "medquad_path": str(options.medquad),
        "mode": "only retrieval" if options.only_retrieval else "pipeline",
        "documents": len(corpus),
        "unreadable_files": len(problems),
        "knowledge_documents": len(knowledge),
        "knowledge_passages": len(passages),
        "curated_entries": len(curated),
        "heldout_documents": len(heldout),
        "heldout_share": options.heldout_share,
        "questions": {group: groups[group] for group in GROUPS},
        "covered_by_curated_only": sum(
            1 for q in questions if q.group == COVERED and not any(f in passage_foci for f in q.covered_by)
        ),
        "seed": options.seed,
        "covered_by_curated": "title and triggers" if options.triggers_cover else "title only",
        "model_limit_per_group": options.limit,
        "configs": list(dict.fromkeys(options.configs)),
        "index_build_seconds": round(index_seconds, 2),
        "base_model": settings.MEDBOT_BASE_MODEL,
        "max_new_tokens": options.max_new_tokens or settings.MEDBOT_MAX_NEW_TOKENS,
        "generation_timeout_s": settings.MEDBOT_GENERATION_TIMEOUT,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.monotonic() - started, 2),
        "credit": MEDQUAD_CREDIT,
    }
    return SplitReport(meta, outcomes, rows)


# --- output --------------------------------------------------------------------------------------

FAILURE_KINDS = {
    "wrong_focus": "Covered, answered, but the best passage is about something else",
    "unanswered_covered": "Covered, but no answer",
    "answered_uncovered": "Uncovered, but answered",
    "unsupported": "Final answers with unsupported sentences or names absent from their passages",
}


def failure_cases(rows: Sequence[Row], count: int = 20, seed: int = 0) -> dict[str, list[Row]]:
    """Up to ``count`` rows of each kind of miss, drawn with ``seed`` (the first ones would all
    come from one MedQuAD subset), in id order."""
    kinds = {
        "wrong_focus": [r for r in rows if r.group == COVERED and r.answered and not r.focus_match],
        "unanswered_covered": [r for r in rows if r.group == COVERED and not r.answered],
        "answered_uncovered": [r for r in rows if r.group == UNCOVERED and r.answered],
        "unsupported": [r for r in rows if r.answered and (r.unsupported or r.missing)],
    }
    rng = random.Random(seed)
    return {
        kind: sorted(rng.sample(found, min(count, len(found))), key=lambda r: r.id) for kind, found in kinds.items()
    }


def _pct(rate: dict[str, Any]) -> str:
    if rate["rate"] is None:
        return "–"
    return f"{rate['rate'] * 100:.1f} % ({rate['hits']}/{rate['n']})"


def _short(rate: dict[str, Any]) -> str:
    return "–" if rate["rate"] is None else f"{rate['rate'] * 100:.0f} % of {rate['n']}"


def _ms(pair: dict[str, float | None]) -> str:
    if pair["p50"] is None:
        return "–"
    return f"{pair['p50']:.1f} / {pair['p95']:.1f} ms"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "–"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_markdown(report: SplitReport, failures: int = 20) -> str:
    """Tables per group with the configurations side by side, the acceptance bars, and failure
    examples (the paraphrased question, the expected focus, what was retrieved)."""
    meta = report.meta
    ran = [o for o in report.outcomes if not o.skipped]
    lines = [
        f"## Knowledge split evaluation ({meta['mode']})",
        "",
        f"`{meta['medquad_path']}`: {meta['documents']} documents ({meta['unreadable_files']} unreadable files "
        f"skipped), split by document with seed {meta['seed']}: {meta['knowledge_documents']} documents "
        f"({meta['knowledge_passages']} passages) + {meta['curated_entries']} curated entries form the knowledge "
        f"base (index built in {meta['index_build_seconds']:.1f} s); {meta['heldout_documents']} documents "
        f"({meta['heldout_share']:g}) are held out and asked in new words: {meta['questions'][COVERED]} questions "
        f"on covered topics ({meta['covered_by_curated_only']} of them covered by a curated entry only, by its "
        f"{meta.get('covered_by_curated', 'title only')}), "
        f"{meta['questions'][UNCOVERED]} on uncovered topics. Model configurations answer at most "
        f"{meta['model_limit_per_group']} questions per group (seeded sample), {meta['max_new_tokens']} max new "
        f"tokens, `{meta['base_model']}`. Answer cache off. Run took {meta['wall_seconds']:.0f} s.",
        "",
    ]
    rows_by_group: dict[str, list[tuple[str, Callable[[dict[str, Any]], str]]]] = {
        COVERED: [
            ("questions", lambda s: str(s["questions"])),
            ("answered", lambda s: _pct(s["answered"])),
            ("top-1 focus match", lambda s: _pct(s["focus_match"])),
            ("top-1 focus match, of answered", lambda s: _pct(s["focus_match_of_answered"])),
            ("answered, focus named as the knowledge base names it", lambda s: _pct(s["answered_name_known"])),
            ("top-1 focus match, same questions", lambda s: _pct(s["focus_match_name_known"])),
            ("unsupported sentences in final answers", lambda s: _pct(s["unsupported_sentences"])),
            ("answers with a number/name absent from their passages", lambda s: str(s["answers_with_missing_names"])),
            (
                "ROUGE-L F1 vs reference (mean, answered)",
                lambda s: f"{s['rouge_l']['mean']:.3f}" if s["rouge_l"]["mean"] is not None else "–",
            ),
            ("latency p50 / p95", lambda s: _ms(s["latency_ms"])),
            ("search p50 / p95", lambda s: _ms(s["search_ms"])),
            ("sources", lambda s: _counts(s["sources"])),
            ("answered from (best passage's source)", lambda s: _counts(s["answered_from"])),
            ("fallback reasons", lambda s: _counts(s["fallbacks"])),
        ],
    }
    rows_by_group[UNCOVERED] = [
        rows_by_group[COVERED][0],
        ("honest “no reliable answer”", lambda s: _pct(s["honest_unavailable"])),
        *rows_by_group[COVERED][1:],
    ]
    titles = {COVERED: "Covered topics", UNCOVERED: "Uncovered topics"}
    if ran:
        for group in GROUPS:
            lines += [
                f"### {titles[group]}",
                "",
                "| metric | " + " | ".join(o.config for o in ran) + " |",
                "|---|" + "---|" * len(ran),
                *[
                    f"| {label} | " + " | ".join(cell(o.summary[group]) for o in ran) + " |"
                    for label, cell in rows_by_group[group]
                ],
                "",
            ]
        lines += ["### Acceptance bars", "", "| config | group | metric | bar | value | |", "|---|---|---|---|---|---|"]
        for o in ran:
            for bar in o.bars:
                value = "–" if bar["value"] is None else f"{bar['value']:.4g}"
                verdict = "n/a" if bar["holds"] is None else ("holds" if bar["holds"] else "**misses**")
                lines.append(f"| {o.config} | {bar['group']} | {bar['metric']} | {bar['bar']} | {value} | {verdict} |")
        lines.append("")
    for o in report.outcomes:
        if o.skipped:
            lines += [f"Skipped `{o.config}`: {o.skipped}.", ""]
    if ran:
        templates = sorted({t for o in ran for group in GROUPS for t in o.summary[group]["by_template"]})
        lines += [
            "### By wording: answered / top-1 focus match on covered topics, answered on uncovered",
            "",
            "| wording | " + " | ".join(o.config for o in ran) + " |",
            "|---|" + "---|" * len(ran),
        ]
        for template in templates:
            cells = []
            for o in ran:
                covered = o.summary[COVERED]["by_template"].get(template)
                uncovered = o.summary[UNCOVERED]["by_template"].get(template)
                cell = f"{_short(covered['answered'])} / {_short(covered['focus_match'])}" if covered else "–"
                cell += f"; {_short(uncovered['answered'])}" if uncovered else "; –"
                cells.append(cell)
            lines.append(f"| {_cell(template)} | " + " | ".join(cells) + " |")
        lines.append("")
    for o in ran:
        cases = failure_cases([r for r in report.rows if r.config == o.config], failures, meta["seed"])
        for kind, found in cases.items():
            if not found:
                continue
            lines += [f"### `{o.config}`: {FAILURE_KINDS[kind]} ({len(found)} examples)", ""]
            lines += [
                "| id | question | expected focus | retrieved (focus — title) | source |",
                "|---|---|---|---|---|",
            ]
            for row in found:
                retrieved = f"{row.top_focus} — {row.top_title}" if row.top_title else "nothing"
                if row.required_words and kind != "unsupported":
                    retrieved += f" [required: {', '.join(row.required_words)}]"
                if kind == "unsupported":
                    retrieved += (
                        f"; missing: {', '.join(row.missing) or '–'}; {row.unsupported}/{row.sentences} unsupported"
                    )
                lines.append(
                    f"| `{row.id}` | {_cell(row.question)} | {_cell(row.focus)} | {_cell(retrieved)} | {row.source} |"
                )
            lines.append("")
    lines += [f"Data: {meta['credit']}. Read at run time; reference answers are not written out.", ""]
    return "\n".join(lines)


def print_table(report: SplitReport) -> str:
    """The headline numbers, one line per configuration and group, for a terminal."""
    lines = [
        f"{'config':<14}{'group':<11}{'n':>6}{'answered':>10}{'focus@1':>9}{'unsupp.':>9}{'missing':>9}"
        f"{'ROUGE-L':>9}{'honest':>8}{'p50 ms':>9}{'p95 ms':>9}"
    ]

    def rate(value: dict[str, Any]) -> str:
        return "–" if value["rate"] is None else f"{value['rate'] * 100:.1f}%"

    for o in report.outcomes:
        if o.skipped:
            lines.append(f"{o.config:<14}skipped: {o.skipped}")
            continue
        for group in GROUPS:
            s = o.summary[group]
            rouge = "–" if s["rouge_l"]["mean"] is None else f"{s['rouge_l']['mean']:.3f}"
            p50, p95 = s["latency_ms"]["p50"], s["latency_ms"]["p95"]
            lines.append(
                f"{o.config:<14}{group:<11}{s['questions']:>6}{rate(s['answered']):>10}{rate(s['focus_match']):>9}"
                f"{rate(s['unsupported_sentences']):>9}{s['answers_with_missing_names']:>9}{rouge:>9}"
                f"{rate(s['honest_unavailable']):>8}{'–' if p50 is None else f'{p50:.1f}':>9}"
                f"{'–' if p95 is None else f'{p95:.1f}':>9}"
            )
    return "\n".join(lines)


def write_report(report: SplitReport, output: Path) -> tuple[Path, Path]:
    """``knowledge-split-<configs>[-retrieval].json`` and ``.md`` in ``output`` (gitignored in
    bench/results: they hold MedQuAD answers), each written to a .tmp first and renamed."""
    output.mkdir(parents=True, exist_ok=True)
    stem = "knowledge-split-" + "-".join(report.meta["configs"])
    if report.meta["mode"] == "only retrieval":
        stem += "-retrieval"
    paths = (output / f"{stem}.json", output / f"{stem}.md")
    contents = (json.dumps(report.as_dict(), indent=1, ensure_ascii=False) + "\n", render_markdown(report))
    for path, content in zip(paths, contents, strict=True):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(content, encoding="utf-8")
        temporary.replace(path)
    return paths
