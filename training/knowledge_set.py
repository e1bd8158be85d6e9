"""Training examples made from the knowledge base, and the held-out questions that judge an adapter.

The adapter's job is narrow: answer the question from the passages in the prompt, briefly,
adding nothing. So every example here is what serving would do with a question:

- the question: a passage's own question, and a paraphrase in our own words (``WORDINGS``);
- the grounding: the passages retrieval returns for that question, cut as serving cuts them
  (``pipeline.find_passages`` + ``pipeline.grounding_for``) — a wrong passage among them included,
  so the adapter also learns to leave one aside;
- the target: the passage's most relevant sentences *as they stand in that grounding*, a few of
  them. A question whose own passage is not retrieved is skipped (its target would not be in the
  prompt, and an example like that teaches the model to answer from memory), and so is a target
  the faithfulness gate would refuse.

Topics are split once, by a stable hash of the passage's focus: ``is_held_out`` topics (about one
in ten) are never trained on, and ``evaluation_questions`` asks their passages' own questions.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import transaction

from inference import pipeline
from inference.grounding import select_sentences
from knowledge.models import Passage
from knowledge.search import Document
from knowledge.text import phrase
from training.models import TrainingExample

HELD_OUT_PER_MILLE = 100  # one topic in ten is kept for evaluation
TARGET_WORDS = 60  # a few sentences: the answer people read in the chat
MIN_PASSAGE_WORDS = 25  # shorter passages are headings or "see also" lines, not answers

# Our own wordings per question type, for training. The evaluation (bench/knowledge_split.py)
# has its own, different ones, so no score is earned by having seen its phrasing.
WORDINGS: dict[str, tuple[str, ...]] = {
    "information": ("tell me about {focus}", "explain {focus} to me", "I was told I have {focus}. What is it?"),
    "symptoms": ("what happens to someone with {focus}?", "what does {focus} feel like?", "how does {focus} show?"),
    "causes": ("why do people get {focus}?", "where does {focus} come from?"),
    "treatment": ("how do doctors manage {focus}?", "what helps with {focus}?", "can {focus} be treated?"),
    "prevention": ("can {focus} be avoided?", "what can I do so I don't get {focus}?"),
    "exams and tests": ("what tests find {focus}?", "how would a doctor check for {focus}?"),
    "susceptibility": ("am I likely to get {focus}?", "who is more likely to have {focus}?"),
    "outlook": ("what happens over time with {focus}?", "will {focus} get better?"),
    "complications": ("can {focus} lead to other problems?",),
    "frequency": ("how rare is {focus}?", "how often does {focus} happen?"),
    "inheritance": ("is {focus} passed down in families?", "can parents pass {focus} to a child?"),
    "genetic changes": ("which genes are involved in {focus}?", "what gene changes lead to {focus}?"),
    "stages": ("what are the stages of {focus}?",),
    "research": ("what is being studied about {focus}?",),
    "considerations": ("what else matters for someone with {focus}?",),
}


def is_held_out(focus: str) -> bool:
    """The stable topic split: the same focus is held out on every machine and every run."""
    key = phrase(focus) or focus.strip().lower()
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 1000 < HELD_OUT_PER_MILLE


def _usable(passage: Passage) -> bool:
    return bool(passage.focus.strip() and passage.title.strip()) and len(passage.text.split()) >= MIN_PASSAGE_WORDS


def reworded(passage: Passage, rng: random.Random) -> str | None:
    """The passage's question in one of our wordings (None when its type has none)."""
    choices = WORDINGS.get(passage.question_type)
    if not choices:
        return None
    focus = " ".join(passage.focus.split())
    text = rng.choice(choices).format(focus=focus)
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Grounded:
    """A question as serving would prompt the model with it."""

    question: str
    documents: tuple[Document, ...]
    grounding: str


def grounded(question: str) -> Grounded | None:
    """Retrieval and grounding exactly as an ask does; None when nothing is found (then serving
    never calls the model either)."""
    hits = pipeline.find_passages(question)
    if not hits:
        return None
    documents = tuple(hit.document for hit in hits)
    return Grounded(question, documents, pipeline.grounding_for(question, documents))


_BLOCK = re.compile(r"^\[(\d+)\] [^\n]*\n", re.MULTILINE)


def block_of(grounding: str, number: int) -> str:
    """The text of passage ``[number]`` as it stands in the grounding ("" if it was cut)."""
    marks = list(_BLOCK.finditer(grounding))
    for i, mark in enumerate(marks):
        if int(mark.group(1)) == number:
            end = marks[i + 1].start() if i + 1 < len(marks) else len(grounding)
            return grounding[mark.end() : end].strip()
    return ""


def _answers_like(document: Document, passage: Passage) -> bool:
    """The passage itself, or another source's passage on the same topic and question type
    (MedQuAD's subsets repeat topics): either is a right passage to answer from."""
    if document.key == f"passage:{passage.pk}":
        return True
    return document.question_type == passage.question_type and phrase(document.focus) == phrase(passage.focus)


def target_answer(item: Grounded, passage: Passage) -> str | None:
    """The few most relevant sentences of the right passage as the prompt shows them, or None
    when no right passage was retrieved, it was cut, or its sentences would not pass the gates."""
    number = next((i for i, d in enumerate(item.documents, start=1) if _answers_like(d, passage)), None)
    if number is None:
        return None
    block = block_of(item.grounding, number)
    chosen = select_sentences(item.question, block, TARGET_WORDS) if block else []
    if not chosen:
        return None
    answer = " ".join(chosen)
    return answer if pipeline.judge(item.question, answer, item.documents).passed else None


@dataclass
class BuildReport:
    passages: int = 0
    created: int = 0
    already_there: int = 0
    skipped: Counter = field(default_factory=Counter)

    def describe(self) -> str:
        skipped = ", ".join(f"{count} {why}" for why, count in self.skipped.most_common()) or "none"
        return (
            f"{self.created} examples written from {self.passages} passages "
            f"({self.already_there} already there; skipped: {skipped})."
        )


def topic_passages(held_out: bool, seed: int) -> list[Passage]:
    """Enabled, usable passages of the training topics (or of the held-out ones), seeded order."""
    rows = [
        p
        for p in Passage.objects.filter(source__enabled=True).exclude(question_type="").order_by("pk")
        if _usable(p) and is_held_out(p.focus) == held_out
    ]
    random.Random(seed).shuffle(rows)
    return rows


def build_from_knowledge(
    count: int, seed: int = 0, wordings: int = 1, progress: Callable[[int, int], None] | None = None
) -> BuildReport:
    """Write up to ``count`` TrainingExamples (origin ``knowledge``) from sampled passages: the
    passage's own question and ``wordings`` rewordings each. Re-running with the same seed adds
    nothing twice (the same question for the same passage is skipped)."""
    rng = random.Random(seed)
    report = BuildReport()
    existing = set(
        TrainingExample.objects.filter(origin=TrainingExample.Origin.KNOWLEDGE).values_list("passage_id", "question")
    )
    pending: list[TrainingExample] = []
    for passage in topic_passages(held_out=False, seed=seed):
        if report.created + report.already_there >= count:
            break
        report.passages += 1
        questions = [("own", passage.title.strip())]
        for _ in range(wordings):
            text = reworded(passage, rng)
            if text and all(phrase(text) != phrase(q) for _, q in questions):
                questions.append(("reworded", text))
        for wording, question in questions:
            if report.created + report.already_there >= count:
                break
            if (passage.pk, question) in existing:
                report.already_there += 1
                continue
            item = grounded(question)
            if item is None:
                report.skipped["found nothing"] += 1
                continue
            answer = target_answer(item, passage)
            if answer is None:
                report.skipped["no right passage in the prompt"] += 1
                continue
            pending.append(
                TrainingExample(
                    question=question,
                    answer=answer,
                    grounding=item.grounding,
                    passage=passage,
                    origin=TrainingExample.Origin.KNOWLEDGE,
                    provenance={
                        "wording": wording,
                        "source": passage.source.name,
                        "retrieved": [d.key for d in item.documents],
                        "seed": seed,
                    },
                )
            )
            report.created += 1
            if progress:
                progress(report.created + report.already_there, count)
    with transaction.atomic():
        TrainingExample.objects.bulk_create(pending, batch_size=500)
    return report


@dataclass(frozen=True)
class EvaluationQuestion:
    question: str
    reference: str  # the held-out passage's text: ROUGE-L is taken against it
    documents: tuple[Document, ...]
    grounding: str


def evaluation_questions(limit: int, seed: int = 0) -> list[EvaluationQuestion]:
    """Up to ``limit`` held-out passages' own questions that retrieval finds passages for, as
    the model would be prompted with them. Never trained on: their topics are held out."""
    questions: list[EvaluationQuestion] = []
    for passage in topic_passages(held_out=True, seed=seed):
        if len(questions) >= limit:
            break
        item = grounded(passage.title.strip())
        if item is not None:
            questions.append(EvaluationQuestion(item.question, passage.text, item.documents, item.grounding))
    return questions


def with_grounding(pairs: Iterable[tuple[str, str, str]]) -> tuple[list[tuple[str, str, str]], int]:
    """(question, answer, grounding) for training: a stored grounding as it is, else retrieval's
    now. Examples retrieval finds nothing for are left out (serving never prompts the model
    without passages), and counted."""
    kept, dropped = [], 0
    for question, answer, grounding in pairs:
        if not grounding:
            item = grounded(question)
            if item is None:
                dropped += 1
                continue
            grounding = item.grounding
        kept.append((question, answer, grounding))
    return kept, dropped
