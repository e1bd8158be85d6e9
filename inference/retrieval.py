"""Find the curated entry that best matches a question (BM25 over triggers, title and answer)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rank_bm25 import BM25Okapi

from inference import versions
from inference.models import FallbackRule
from inference.text import words

# Words that carry no topic: question scaffolding and filler. Medical words are never here.
STOPWORDS = frozenset(
    """
    a about after again all am an and any are as at be been before being but by can could did do
    does doing for from get gets getting had has have having he her him his how i if in into is
    it its just know me my myself no not of off on once or other our out over own please really
    she should so some such tell than that the their them then there these they this those to too
    up very was we were what when where which who why will with would you your yours im ive id dont
    cant whats hi hello thanks thank much many lot also one way good bad
    """.split()
)


ANSWER_WEIGHT = 0.5


def tokens(text: str) -> list[str]:
    out = []
    for word in words(text.replace("'", "")):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):  # "type 1" vs "type 2"
            continue
        # A light stemmer: plural and -ing forms meet their base word (headaches → headache).
        for suffix in ("ing", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 4:
                word = word[: -len(suffix)]
                break
        out.append(word)
    return out


@dataclass(frozen=True)
class RuleMatch:
    rule_id: int
    title: str
    answer: str
    score: float


class RuleIndex:
    """An in-memory BM25 index of the enabled rules, rebuilt when the rules version changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self._rules: list[FallbackRule] = []
        self._bm25: BM25Okapi | None = None
        self._bm25_answers: BM25Okapi | None = None

    def _ensure(self) -> None:
        version = versions.current(versions.RULES)
        if version == self._version and version != "unknown":
            return
        with self._lock:
            if version == self._version and version != "unknown":
                return
            rules = list(FallbackRule.objects.filter(enabled=True).order_by("pk"))
            # Two indexes: the curated vocabulary (title and triggers) decides the topic; the
            # answer text adds recall for words curators did not list, at a lower weight.
            self._bm25 = BM25Okapi([tokens(f"{rule.title}\n{rule.triggers}") for rule in rules]) if rules else None
            self._bm25_answers = BM25Okapi([tokens(rule.answer) for rule in rules]) if rules else None
            self._rules = rules
            self._version = version

    def search(self, question: str, limit: int = 3) -> list[RuleMatch]:
        self._ensure()
        query = tokens(question)
        if self._bm25 is None or not query:
            return []
        scores = self._bm25.get_scores(query) + ANSWER_WEIGHT * self._bm25_answers.get_scores(query)
        ranked = sorted(range(len(self._rules)), key=lambda i: (scores[i], self._rules[i].priority), reverse=True)[
            :limit
        ]
        return [
            RuleMatch(self._rules[i].pk, self._rules[i].title, self._rules[i].answer, float(scores[i]))
            for i in ranked
            if scores[i] > 0
        ]

    def best(self, question: str, min_score: float) -> RuleMatch | None:
        found = self.search(question, limit=1)
        return found[0] if found and found[0].score >= min_score else None


rule_index = RuleIndex()
