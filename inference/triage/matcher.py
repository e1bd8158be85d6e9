"""Concepts and red-flag rules compiled from curated data, and the matcher that reads a message with them.

A concept is a symptom, sign, modifier, person, measurement or named condition, written by curators as
plain phrases, one per line:

- words match whole words: ``chest pain`` matches "chest pain", not "chest painful";
- a trailing ``*`` matches any ending: ``vomit*`` matches "vomiting" and "vomited";
- ``...`` stands for up to three words: ``pain ... chest`` matches "pain in my chest";
- a line starting with ``!`` is an exclusion: ``!choking hazard`` stops "choking" matching there;
- a measurement also has ranges (``38-43, 100.4-110``): it is found only when a number in range is
  within three words of one of its phrases ("temperature of 38.4", "sugar is 2.1").

Context concepts, the ``CONTEXT`` names below, are cue words the matcher itself uses: negation
("no", "without") and hypotheticals ("if") switch off the concept they come before in the same clause,
remote-past markers ("years ago") do so when they are nearer than a present-time marker, and a message
that asks about a condition ("what is", "how is ... treated"; or "can you ...?" with nobody in it) with
nothing happening now is a question, not a report.

A rule's condition combines concept names with AND, OR, NOT and parentheses:
``chest_discomfort AND (spreading OR sweating OR breathless OR faint)``.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from inference.triage.text import prepare
from knowledge.text import one_edit_apart, one_letter_less

logger = logging.getLogger("inference.triage")

# Context concepts the matcher gives a meaning to. Curators edit their cue words like any other concept.
NEGATION = "negation"  # "no", "not", "without", "denies": switches off the concept it comes before
UNCERTAINTY = "uncertainty"  # "not sure", "dont know": looks like negation and is not
HYPOTHETICAL = "hypothetical"  # "if", "in case": the concept after it is not being reported
PAST = "past"  # "years ago", "as a child": a remote event, not this one
NOW = "now"  # "right now", "just", "im having": happening now; beats a past marker further away
RESOLVED = "resolved"  # "has stopped", "fine now": the concept before it is over
ASKING_ABOUT = "asking_about"  # "what is", "signs of", "how is ... treated": a question about a condition
ASKING_GENERAL = "asking_general"  # "can you", "how long": a question, unless someone is being described
PERSONAL = "personal"  # "i", "my", "he", "my dad": someone is being described
CONTEXT = (NEGATION, UNCERTAINTY, HYPOTHETICAL, PAST, NOW, RESOLVED, ASKING_ABOUT, ASKING_GENERAL, PERSONAL)

# The concepts that say who a message is about when it is not the writer: a baby, a child, an older
# adult (the curated concept names in fixtures/triage_concepts.json).
SOMEONE_ELSE_CONCEPTS = frozenset({"baby_young", "baby_3_to_6_months", "child", "young_child", "older_adult"})

NEGATION_WINDOW = 4  # words between a negation cue and the concept it negates
# Where a negation stops: "but", or "and" starting another statement about them ("my baby isnt crying
# anymore and is floppy": floppy is not denied; "no fever and a rash" still denies both).
NEGATION_STOP = re.compile(
    r"\b(but|however|although|though|yet|and (is|was|has|had|keeps|seems|looks|feels|now|then))\b"
)
RESOLVED_WINDOW = 8  # words after a concept in which "has stopped" still refers to it
# Resolved cues that mean "no longer" only with a negation of their own, right after the concept: "the
# pain doesnt bother me anymore" is over; "i cant breathe anymore", "i dont want to be alive anymore" and
# "her face is drooping and she isnt talking anymore" are not. "any more" before a noun is a quantity
# ("i dont have any more inhalers").
NO_LONGER = ("anymore", "any more")
NO_LONGER_REACH = 3  # words between a concept and the negation that makes "anymore" end it
# Words that start another statement between a concept and a negation: the negation is not about it.
NEW_STATEMENT = frozenset("and but because so as since or then i im he hes she shes they we it its you".split())
GAP = r"(?:\w+ ){0,3}"  # what "..." in a phrase stands for
WORD_GAP = r"(?:(?!\d)\w+ ){0,3}"  # the same without numbers: between a measurement's name and its value
_NUMBER = r"(?P<num>\d+(?:\.\d+)?)"
_TOKEN = re.compile(r"\S+")
MIN_TYPO_LENGTH = 5  # shorter words have too many one-edit neighbours to guess safely

REPORTABLE = ("symptom", "sign", "intent", "event")  # kinds that, said of someone, make a message a report
# Kinds a "fine now" can end. Not an intent ("i want to die, i dont care anymore"), nor an event such as
# what was swallowed: "took 30 paracetamol, i feel fine now" is still an overdose.
RESOLVABLE = ("symptom", "sign", "condition")


class ConditionError(ValueError):
    """A rule condition that cannot be read: unknown word, unbalanced brackets, dangling operator."""


# --- conditions ------------------------------------------------------------------------------------

_CONDITION_TOKEN = re.compile(r"\(|\)|[A-Za-z_][A-Za-z0-9_]*|\S")
Expr = tuple[Any, ...]  # ("name", str) | ("not", Expr) | ("and", Expr, ...) | ("or", Expr, ...)


def parse_condition(source: str) -> Expr:
    """Parse ``a AND (b OR NOT c)``; AND binds tighter than OR. Raises ConditionError."""
    tokens = _CONDITION_TOKEN.findall(source or "")
    if not tokens:
        raise ConditionError("the condition is empty")
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        token = tokens[position]
        position += 1
        return token

    def parse_or() -> Expr:
        parts = [parse_and()]
        while (peek() or "").upper() == "OR":
            take()
            parts.append(parse_and())
        return parts[0] if len(parts) == 1 else ("or", *parts)

    def parse_and() -> Expr:
        parts = [parse_not()]
        while (peek() or "").upper() == "AND":
            take()
            parts.append(parse_not())
        return parts[0] if len(parts) == 1 else ("and", *parts)

    def parse_not() -> Expr:
        token = peek()
        if token is None:
            raise ConditionError("the condition ends where a concept name was expected")
        if token.upper() == "NOT":
            take()
            return ("not", parse_not())
        if token == "(":  # noqa: S105 (a bracket, not a password)
            take()
            inner = parse_or()
            if peek() != ")":
                raise ConditionError("a '(' is never closed")
            take()
            return inner
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token) or token.upper() in {"AND", "OR"}:
            raise ConditionError(f"expected a concept name, found {token!r}")
        take()
        return ("name", token.lower())

    expression = parse_or()
    if position != len(tokens):
        raise ConditionError(f"unexpected {tokens[position]!r}")
    return expression


def condition_names(expression: Expr) -> set[str]:
    if expression[0] == "name":
        return {expression[1]}
    return set().union(*(condition_names(part) for part in expression[1:]))


def evaluate(expression: Expr, present: set[str] | frozenset[str]) -> bool:
    kind = expression[0]
    if kind == "name":
        return expression[1] in present
    if kind == "not":
        return not evaluate(expression[1], present)
    if kind == "and":
        return all(evaluate(part, present) for part in expression[1:])
    return any(evaluate(part, present) for part in expression[1:])


# --- concepts --------------------------------------------------------------------------------------


def phrase_regex(phrase: str) -> str:
    """One curator phrase as a regular expression over ``prepare``'s output (words between spaces).

    The phrase gets the same clean-up as the message ("can't" -> "cant", "hart" -> "heart"), with
    ``...`` and a trailing ``*`` carried through it as marker words."""
    marked = re.sub(r"(?<=\w)\*", "qqstarqq", phrase.lower().replace("...", " qqgapqq "))
    parts: list[str] = []
    for word in prepare(marked).replace("|", " ").split():
        if word == "qqgapqq":
            parts.append(GAP)
        elif word == "qqstarqq" and parts:  # after digits, which prepare splits off: "in 20*"
            parts[-1] = parts[-1].removesuffix(" ") + r"\w* "
        elif word.endswith("qqstarqq"):
            parts.append(re.escape(word.removesuffix("qqstarqq")) + r"\w* ")
        else:
            parts.append(re.escape(word) + " ")
    return "".join(parts)


def parse_ranges(text: str) -> tuple[tuple[float, float], ...]:
    """``"38-43, 100.4-110"`` -> ((38, 43), (100.4, 110)); a bad entry is skipped with a warning."""
    ranges: list[tuple[float, float]] = []
    for entry in re.split(r"[,;\n]+", text or ""):
        entry = entry.strip()
        if not entry:
            continue
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:-|to)\s*(\d+(?:\.\d+)?)", entry)
        if not match:
            logger.warning("Triage: skipping the range %r (write it as low-high, e.g. 38-43)", entry)
            continue
        low, high = float(match.group(1)), float(match.group(2))
        ranges.append((min(low, high), max(low, high)))
    return tuple(ranges)


@dataclass(frozen=True)
class CompiledConcept:
    name: str
    kind: str
    pattern: re.Pattern[str] | None
    exclude: re.Pattern[str] | None = None
    ranges: tuple[tuple[float, float], ...] = ()


def compile_concept(name: str, kind: str, synonyms: str, ranges: str = "") -> CompiledConcept:
    """Compile one concept row. Blank or unusable phrases are skipped, never raised: one bad edit in the
    admin must not switch triage off (the admin form validates before saving)."""
    phrases, exclusions = [], []
    for line in (synonyms or "").splitlines():
        line = line.strip()
        if not line:
            continue
        target = exclusions if line.startswith("!") else phrases
        source = phrase_regex(line.lstrip("!").strip())
        if source.strip():
            target.append(source)
    # Longest first, so "chest pain spreading" wins over "chest pain" when both are phrases.
    phrases.sort(key=len, reverse=True)
    parsed_ranges = parse_ranges(ranges) if kind == "measurement" else ()
    pattern = None
    if phrases:
        alternatives = "(?:" + "|".join(phrases) + ")"
        if parsed_ranges:
            # A number within three words before or after the phrase: "38.4 temperature", "temp of 38.4";
            # the nearest one ("o2 98 pulse 70" measures the oxygen as 98, not 70).
            source = (
                rf"(?<= ){_NUMBER} {WORD_GAP}{alternatives}"
                rf"|(?<= ){alternatives}{WORD_GAP}{_NUMBER.replace('num', 'num2')} "
            )
        else:
            source = rf"(?<= ){alternatives}"
        pattern = re.compile(source)
    exclude = re.compile(r"(?<= )(?:" + "|".join(exclusions) + ")") if exclusions else None
    return CompiledConcept(name=name, kind=kind, pattern=pattern, exclude=exclude, ranges=parsed_ranges)


@dataclass(frozen=True)
class Occurrence:
    concept: str
    start: int
    end: int
    text: str
    status: str  # "present", "negated", "hypothetical", "past", "resolved"


@dataclass
class Reading:
    """What the matcher found in one message."""

    prepared: str
    occurrences: list[Occurrence] = field(default_factory=list)
    present: set[str] = field(default_factory=set)  # clinical concepts reported as happening
    context: set[str] = field(default_factory=set)  # context cues seen
    about: bool = False  # a question about a condition, not a report of one
    reported: frozenset[str] = frozenset()  # symptoms, signs, intents or events reported as happening now

    @property
    def reports_symptom(self) -> bool:
        return bool(self.reported)

    @property
    def concepts(self) -> tuple[str, ...]:
        return tuple(sorted(self.present))

    @property
    def set_aside(self) -> dict[str, str]:
        """Concepts mentioned but not counted, with why: {"chest_discomfort": "negated"}."""
        seen: dict[str, str] = {}
        for occurrence in self.occurrences:
            if occurrence.status != "present" and occurrence.concept not in self.present:
                seen.setdefault(occurrence.concept, occurrence.status)
        return seen


def _overlaps(span: tuple[int, int], others: list[tuple[int, int]]) -> bool:
    start, end = span
    return any(o_start <= start < o_end or start <= o_start < end for o_start, o_end in others)


@dataclass
class _Cues:
    """Where the context cues are in one prepared message, and what they make of a concept found there."""

    prepared: str
    negations: list[tuple[int, int]]
    hypotheticals: list[tuple[int, int]]
    resolved: list[tuple[int, int]]
    past: list[tuple[int, int]]
    now: list[tuple[int, int]]

    def __post_init__(self) -> None:
        self.boundaries = [index for index, character in enumerate(self.prepared) if character == "|"]
        self.token_starts = [match.start() for match in _TOKEN.finditer(self.prepared)]

    def clause_of(self, position: int) -> int:
        return bisect.bisect_right(self.boundaries, position)

    def words_between(self, left: int, right: int) -> int:
        return bisect.bisect_left(self.token_starts, right) - bisect.bisect_left(self.token_starts, left)

    def _no_longer(self, end: int, cue_start: int, cue_end: int, matches: list[tuple[int, int]]) -> bool:
        """Whether "anymore" at ``cue_start`` ends the concept that ends at ``end``: a negation of its
        own (not inside another concept's words) follows the concept closely, in the same statement."""
        if self.prepared[cue_start:cue_end].strip() == "any more" and self.prepared[cue_end:].strip(" ")[:1] not in (
            "",
            "|",
        ):
            return False  # "no more inhalers", not "no longer"
        for n_start, _ in self.negations:
            if not end <= n_start < cue_start or any(
                m_start >= end and m_start <= n_start < m_end for m_start, m_end in matches
            ):
                continue
            between = self.prepared[end:n_start].split()
            if len(between) <= NO_LONGER_REACH and not NEW_STATEMENT.intersection(between):
                return True
        return False

    def nearest(self, spans: list[tuple[int, int]], clause: int, start: int) -> int | None:
        return min((abs(s - start) for s, _ in spans if self.clause_of(s) == clause), default=None)

    def status(self, start: int, end: int, matches: list[tuple[int, int]] = (), *, can_resolve: bool = True) -> str:
        """ "present", or why the concept at ``start:end`` does not count.

        ``matches`` are the spans of every clinical concept found in the message: a negation inside
        another concept's words ("cant breathe") is that concept's, not a cue for this one. Only a
        ``RESOLVABLE`` kind can be over (``can_resolve``)."""
        clause = self.clause_of(start)
        if any(
            self.clause_of(n_start) == clause
            and n_end <= start + 1
            and self.words_between(n_end, start) <= NEGATION_WINDOW
            and not NEGATION_STOP.search(self.prepared[n_end:start])
            # "not feeding and very sleepy": the "not" is the feeding's own.
            and not any(m_start <= n_start and n_end <= m_end and m_end <= start for m_start, m_end in matches)
            for n_start, n_end in self.negations
        ):
            return "negated"
        if any(self.clause_of(h_start) == clause and h_end <= start + 1 for h_start, h_end in self.hypotheticals):
            return "hypothetical"
        if can_resolve and any(
            r_start >= end - 1
            and self.clause_of(r_start) in (clause, clause + 1)
            and self.words_between(end, r_start) <= RESOLVED_WINDOW
            and (self.prepared[r_start:r_end].strip() not in NO_LONGER or self._no_longer(end, r_start, r_end, matches))
            for r_start, r_end in self.resolved
        ):
            return "resolved"
        # A remote-past marker counts when it is nearer than any present-time marker in the clause:
        # "had a cardiac arrest in 2015 and now has an ICD" is past.
        past, now = self.nearest(self.past, clause, start), self.nearest(self.now, clause, start)
        if past is not None and (now is None or past < now):
            return "past"
        return "present"


class Matcher:
    """Reads a message with a set of compiled concepts. Immutable once built; safe across threads."""

    def __init__(self, concepts: Iterable[CompiledConcept], known_words: Iterable[str] = ()) -> None:
        self.concepts = [concept for concept in concepts if concept.pattern is not None]
        self.clinical = [concept for concept in self.concepts if concept.name not in CONTEXT]
        self.context = {concept.name: concept for concept in self.concepts if concept.name in CONTEXT}
        self.names = {concept.name for concept in self.concepts}
        self.kinds = {concept.name: concept.kind for concept in self.concepts}
        # Typo repair: a word that is neither in a concept phrase nor a known English word, one edit away
        # from exactly one concept word ("chset" -> "chest"), is read as that word.
        vocabulary = {
            word
            for concept in self.concepts
            for word in re.findall(rf"[a-z]{{{MIN_TYPO_LENGTH},}}", concept.pattern.pattern if concept.pattern else "")
        }
        self.known = vocabulary | set(known_words)
        self.deletes: dict[str, set[str]] = {}
        for word in vocabulary:
            for variant in one_letter_less(word):
                self.deletes.setdefault(variant, set()).add(word)
        # Ordinary words as near as a concept word make a two-change typo ambiguous, so it is left
        # alone: "snezing" is as near "sneezing" as "seizing".
        self.decoys: dict[str, set[str]] = {}
        for word in self.known - vocabulary:
            if len(word) >= MIN_TYPO_LENGTH:
                for variant in one_letter_less(word):
                    self.decoys.setdefault(variant, set()).add(word)

    def repair(self, prepared: str) -> str:
        """``prepared`` with concept words' one-edit typos fixed."""

        def fix(match: re.Match[str]) -> str:
            word = match.group()
            if word in self.known:
                return word
            variants = one_letter_less(word)
            candidates = {
                candidate
                for variant in variants
                for candidate in self.deletes.get(variant, ())
                # A dropped, swapped or wrong letter, never an extra one: "grapes" must not become "gapes".
                if len(candidate) >= len(word)
            }
            if len(candidates) != 1:
                return word
            found = next(iter(candidates))
            # Two changes ("throte", "sezuire"): only with no ordinary word as near ("snezing").
            if not one_edit_apart(word, found) and any(
                len(decoy) >= len(word) for variant in variants for decoy in self.decoys.get(variant, ())
            ):
                return word
            return found

        return re.sub(rf"(?<= )[a-z]{{{MIN_TYPO_LENGTH},}}(?= )", fix, prepared)

    def _spans(self, name: str, text: str) -> list[tuple[int, int]]:
        concept = self.context.get(name)
        if concept is None or concept.pattern is None:
            return []
        excluded = [match.span() for match in concept.exclude.finditer(text)] if concept.exclude else []
        return [match.span() for match in concept.pattern.finditer(text) if not _overlaps(match.span(), excluded)]

    def read(self, text: str) -> Reading:
        prepared = self.repair(prepare(text))
        reading = Reading(prepared=prepared)
        if not prepared.strip(" |"):
            return reading
        uncertain = self._spans(UNCERTAINTY, prepared)
        cues = _Cues(
            prepared,
            negations=[span for span in self._spans(NEGATION, prepared) if not _overlaps(span, uncertain)],
            hypotheticals=self._spans(HYPOTHETICAL, prepared),
            resolved=self._spans(RESOLVED, prepared),
            past=self._spans(PAST, prepared),
            now=self._spans(NOW, prepared),
        )
        asking = self._spans(ASKING_ABOUT, prepared)
        personal = self._spans(PERSONAL, prepared)
        for name, spans in ((ASKING_ABOUT, asking), (ASKING_GENERAL, self._spans(ASKING_GENERAL, prepared))):
            if spans:
                reading.context.add(name)
        if personal:
            reading.context.add(PERSONAL)
        reading.context.update(name for name, spans in ((NOW, cues.now), (PAST, cues.past)) if spans)

        found: list[tuple[str, int, int]] = []
        for concept in self.clinical:
            assert concept.pattern is not None
            excluded = [m.span() for m in concept.exclude.finditer(prepared)] if concept.exclude else []
            for match in concept.pattern.finditer(prepared):
                start, end = match.span()
                if concept.ranges:
                    number = float(match.group("num") or match.group("num2"))
                    if not any(low <= number <= high for low, high in concept.ranges):
                        continue
                if _overlaps((start, end), excluded):
                    continue
                found.append((concept.name, start, end))
        spans = [(start, end) for _, start, end in found]
        for name, start, end in found:
            status = cues.status(start, end, spans, can_resolve=self.kinds[name] in RESOLVABLE)
            reading.occurrences.append(Occurrence(name, start, end, prepared[start:end].strip(), status))
            if status == "present":
                reading.present.add(name)
        # "What are the signs of a stroke?" asks about a condition even with a pronoun in it ("how do I
        # prevent choking"); "can you ...?" does only when nobody is being described. "Now" beats both.
        # A clause that describes someone with a symptom or sign, apart from the question ("what is the best
        # thing to do, my dad has crushing chest pain"), makes the message a report all the same.
        # So does a report told before the question, with nobody named ("can't breathe properly, lips going
        # grey, what is asthma"): a question first and then a list is asking what the signs are.
        asking_clauses = {cues.clause_of(start) for start, _ in asking}
        personal_clauses = {cues.clause_of(start) for start, _ in personal} - asking_clauses
        before_asking = min(asking_clauses, default=-1)
        reported = any(
            occurrence.status == "present"
            and self.kinds[occurrence.concept] in REPORTABLE
            and (
                cues.clause_of(occurrence.start) in personal_clauses or cues.clause_of(occurrence.start) < before_asking
            )
            for occurrence in reading.occurrences
        )
        reading.reported = frozenset(
            occurrence.concept
            for occurrence in reading.occurrences
            if occurrence.status == "present" and self.kinds[occurrence.concept] in REPORTABLE
        )
        context = reading.context
        reading.about = NOW not in context and (
            (ASKING_ABOUT in context and not reported) or (ASKING_GENERAL in context and PERSONAL not in context)
        )
        return reading
