"""A training corpus generated from the concepts and rules, plus the hand-written phrasings.

Each red-flag rule's condition is expanded into the combinations of concepts that satisfy it; each
combination is written out many ways from the concepts' own phrases: first and third person, lay words,
typos, no punctuation, non-native English, long messages with the red flag in the middle. The same
concepts also give the negatives a rule must not fire on: questions about the condition, past events and
negations. The generator is seeded, so the same data gives the same corpus.

Each part of the corpus (one combination of one rule, one everyday complaint, the help requests...) draws
from its own random stream, seeded by the part's name. A phrase added to one concept then changes only
the examples of the parts that use that concept; with one shared stream it redrew the whole corpus, and
the retrained classifier moved on messages the change had nothing to do with.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.triage.matcher import CONTEXT, Expr, parse_condition

GENERATOR_VERSION = "13"  # bump when the templates change: it is part of the classifier's cache key
PHRASINGS = Path(__file__).resolve().parents[2] / "fixtures" / "triage_phrasings.jsonl"


@dataclass(frozen=True)
class Example:
    text: str
    level: str  # "emergency" | "urgent" | "routine"
    kind: str  # the rule's name, or "about" / "past" / "negated" / "everyday" / "hand-written"


# --- phrases -------------------------------------------------------------------------------------

SUBJECTS = [
    ("i", "i have", "im", "my"),
    ("my dad", "my dad has", "my dad is", "his"),
    ("my mum", "my mum has", "my mum is", "her"),
    ("my husband", "my husband has", "my husband is", "his"),
    ("my wife", "my wife has", "my wife is", "her"),
    ("my son", "my son has", "my son is", "his"),
    ("my daughter", "my daughter has", "my daughter is", "her"),
    ("my friend", "my friend has", "my friend is", "their"),
    ("my grandad", "my grandad has", "my grandad is", "his"),
    ("he", "he has", "hes", "his"),
    ("she", "she has", "shes", "her"),
    ("my partner", "my partner has", "my partner is", "their"),
    ("my neighbour", "my neighbour has", "my neighbour is", "their"),
]
FILLERS = [
    "sorry to bother you",
    "i dont really know who else to ask",
    "we were just having dinner",
    "it was a normal day until this afternoon",
    "i am on my own with the kids",
    "we are at home",
    "i looked online but im not sure",
    "we just got back from the shops",
    "i am writing from my phone",
    "she is 67 and usually fit",
    "he has high blood pressure and takes tablets for it",
    "i was at work when it started",
    "we are staying at a hotel",
    "english is not my first language sorry",
    "this is the first time something like this happened",
    "i already took some paracetamol earlier for a headache",
]
OPENERS = ["", "", "", "help ", "please help ", "doctor ", "hi ", "hello ", "urgent ", "quick question "]
CLOSERS = ["", "", "", " what do i do", " what should i do", " please help", " is this serious", " help", " ??", " !!!"]
ABOUT = [
    "what are the signs of {a}",
    "what causes {a}",
    "how is {a} treated",
    "is {a} dangerous",
    "what is the difference between {a} and {b}",
    "can stress cause {a}",
    "how common is {a}",
    "how long does {a} last",
    "what does {a} mean",
    "how do doctors check for {a}",
    "what should you do if someone has {a}",
    "how can i tell if someone has {a}",
    "is {a} always serious",
    "tell me about {a}",
]
PAST = [
    "{subject} had {a} and {b} {when}, {question}",
    "{when} {subject} had {a}, {question}",
    "{subject} had {a} {when} but is fine now, {question}",
]
WHEN = ["years ago", "last year", "as a child", "as a teenager", "two years ago", "back in 2019", "a few months ago"]
QUESTIONS = ["is it hereditary", "should i worry", "can it come back", "what tests should i ask for", "can he drive"]
NEGATED = [
    "no {a} and no {b}, just a bit tired",
    "{subject} doesnt have {a} or {b}, only a cough",
    "i dont have {a}, i just want to know about vitamins",
    "not {a}, just a runny nose",
]
# Personal reports that are not emergencies: a symptom with an ordinary cause, over, or long ago.
BENIGN = [
    "{subject} {a} after sleeping on it, it went away after a minute",
    "{subject} had {a} earlier but is fine now",
    "{subject} had {a} in {year}, is it likely to come back",
    "{subject} had {a} when {pronoun} was {age}, should the new doctor know",
    "{subject} was in hospital with {a} last month and is recovering at home",
    "{subject} {a} a little after the gym, it settles with rest",
    "{subject} fell over but cried straight away and is fine now",
    "{subject} has a cold with a runny nose and a temperature of {normal}",
]
# Complaints that, reported alone as happening now, are not emergencies ("my friend has a headache",
# "i got stung and it itches", "i think i broke my toe": that one is urgent). Without them as negatives,
# every symptom reported now looked like an emergency to the classifier (a lone headache scored 0.8);
# ``classifier.raises`` also asks it to be sure of them. Only concepts no red-flag rule accepts alone:
# with a modifier or another sign, the rules and the positives above still say emergency.
ALONE_NOT_EMERGENCY = frozenset(
    {
        "headache",
        "vomiting",
        "nausea",
        "back_pain",
        "dizzy",
        "urinary_pain",
        "allergy_trigger",
        "hives",
        "fracture_signs",
        "vision_blurred",
        "breathless",
        "head_injury",  # a bump or a concussion alone; with confusion, vomiting, drowsiness... the rules fire
        "ingested",  # what was taken decides: the rules know the poisons, the drugs and the child's medicines
        "indigestion_like",  # heartburn alone; with sweating or a grey colour and nothing easing it, the rules fire
    }
)  # not "bleeding" or "burn": their phrases include the severe kinds ("haemorrhage", "acid burn")
EVERYDAY_CONTEXT = [
    "",
    "",
    " since this morning",
    " after a long day at work",
    " its not too bad",
    " what can i take for it",
    " is there anything i can do at home",
    " on and off for a couple of days",
    " should i see my gp",
    " but otherwise fine",
]
# Everyday complaints no concept names, said as strongly as people say them ("cant stop sneezing, its
# awful"): strong words alone must not make an emergency.
MILD = [
    "a sore throat",
    "a runny nose",
    "a blocked nose",
    "a bit of a cough",
    "dry skin",
    "a stiff shoulder from the gym",
    "trouble sleeping",
    "heartburn after dinner",
    "itchy eyes from hay fever",
    "a spot on my chin",
    "a cold sore",
    "period pain",
    "toothache",
    "earache",
    "a hangover",
    "a bruise on my leg",
    "an ingrown toenail",
    "cramp in my foot",
]
CANT_STOP = ["sneezing", "coughing", "scratching", "snacking", "yawning", "worrying about my exams"]
STRONG = [", its awful", " and its killing me", ", its really bad", " so annoying", ", its massive", " its the worst"]
# Asking for help with an everyday goal: "help" is a cry for help only with nothing else in the message.
HELP_REQUESTS = [
    "help with {goal}",
    "can you help me with {goal}",
    "i need help with {goal}",
    "please help me with {goal}",
    "help me with {goal} please",
    "any help with {goal}",
]
GOALS = [
    "my diet",
    "losing weight",
    "quitting smoking",
    "sleeping better",
    "my cholesterol results",
    "understanding my blood test",
    "my dry skin",
    "stress at work",
    "an exercise plan",
    "eating more healthily",
    "cutting down on alcohol",
    "my hay fever",
]


def _render_phrase(line: str, rng: random.Random, ranges: str = "") -> str:
    words = []
    for word in line.split():
        if word == "...":
            words.append(rng.choice(["", "in my", "in his", "on my", "in her", "in the", "really"]))
        elif word.endswith("*"):
            stem = word.rstrip("*")
            words.append(stem + rng.choice(["", "ing", "ed", "s"]) if len(stem) > 3 else stem)
        else:
            words.append(word)
    phrase = " ".join(word for word in words if word)
    if ranges:
        low, high = _first_range(ranges, rng)
        value = rng.uniform(low, high)
        number = f"{value:.1f}" if high - low < 20 else f"{round(value)}"
        phrase = rng.choice(
            [f"{phrase} of {number}", f"{phrase} is {number}", f"{number} {phrase}", f"{phrase} {number}"]
        )
    return phrase


def _first_range(ranges: str, rng: random.Random) -> tuple[float, float]:
    parts = [part for part in re.split(r"[,;]", ranges) if "-" in part]
    low, high = rng.choice(parts).split("-")
    return float(low), float(high)


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 5 or not word.isalpha():
        return word
    position = rng.randrange(1, len(word) - 1)
    operation = rng.choice(["drop", "swap", "double"])
    if operation == "drop":
        return word[:position] + word[position + 1 :]
    if operation == "swap":
        return word[: position - 1] + word[position] + word[position - 1] + word[position + 1 :]
    return word[:position] + word[position] + word[position:]


def _noise(text: str, rng: random.Random) -> str:
    """Typos, dropped punctuation, non-native grammar, capitals: how real messages arrive."""
    if rng.random() < 0.35:
        text = " ".join(_typo(word, rng) if rng.random() < 0.25 else word for word in text.split())
    if rng.random() < 0.25:  # non-native English
        text = re.sub(r"\b(has|have)\b", "have", text)
        text = re.sub(r"\b(a|an|the) ", "", text)
        text = re.sub(r"\bim\b", "i am", text)
        text = text + rng.choice(["", " since one hour", " from morning", " what i must do", " please tell what to do"])
    if rng.random() < 0.5:
        text = re.sub(r"[^\w\s.]", "", text)
    elif rng.random() < 0.3:
        text = text.capitalize() + rng.choice([".", "?", "!", ""])
    if rng.random() < 0.1:
        text = text.upper()
    return " ".join(text.split())


# --- conditions to concept combinations ----------------------------------------------------------


def _terms(expression: Expr, limit: int = 40) -> list[frozenset[str]]:
    """The conjunctions of concept names that make ``expression`` true (NOT branches are left out)."""
    kind = expression[0]
    if kind == "name":
        return [frozenset({expression[1]})]
    if kind == "not":
        return [frozenset()]
    if kind == "or":
        terms: list[frozenset[str]] = []
        for part in expression[1:]:
            terms.extend(_terms(part, limit))
        return terms[:limit]
    product = [frozenset()]
    for part in expression[1:]:
        product = [left | right for left in product for right in _terms(part, limit)][:limit]
    return product


def _synonym_lines(row: Any) -> list[str]:
    return [
        line.strip() for line in str(row.synonyms).splitlines() if line.strip() and not line.strip().startswith("!")
    ]


def _stream(seed: int, *part: str) -> random.Random:
    """The random stream of one part of the corpus (a string seed is hashed with SHA-512: stable across runs)."""
    return random.Random("\x1f".join([str(seed), *part]))


def generate(concepts: Iterable[Any], rules: Iterable[Any], per_term: int = 10, seed: int = 13) -> list[Example]:
    """The generated corpus: for every way a rule can fire, ``per_term`` phrasings, plus negatives."""
    by_name = {row.name: row for row in concepts if getattr(row, "enabled", True)}
    rules = list(rules)
    examples: list[Example] = []
    drawn: dict[tuple[str, ...], int] = {}

    def speaker(rng: random.Random) -> Any:
        def say(name: str) -> str:
            row = by_name[name]
            return _render_phrase(rng.choice(_synonym_lines(row)), rng, getattr(row, "ranges", "") or "")

        return say

    for rule in rules:
        if not getattr(rule, "enabled", True) or not getattr(rule, "condition", ""):
            continue
        level = getattr(rule, "level", "emergency") or "emergency"
        for term in _terms(parse_condition(rule.condition)):
            names = sorted(name for name in term if name in by_name and name not in CONTEXT)
            if not names:
                continue
            # Two terms can name the same concepts once the context cues are left out: each its own draw.
            key = (rule.name, *names)
            drawn[key] = drawn.get(key, 0) + 1
            rng = _stream(seed, "rule", *key, str(drawn[key]))
            say = speaker(rng)
            for _ in range(per_term):
                examples.append(Example(_positive(names, say, rng), level, rule.name))
            clinical = [name for name in names if by_name[name].kind in ("symptom", "sign", "event", "condition")]
            if clinical:
                for _ in range(max(1, per_term // 3)):
                    text, kind = _negative(clinical, names, say, rng)
                    examples.append(Example(text, "routine", kind))
    examples.extend(_everyday(by_name, rules, speaker, functools.partial(_stream, seed), per_term))
    examples.extend(_consumer_questions(_stream(seed, "consumer questions"), per_term))
    return examples


def _alone_level(name: str, rules: list[Any]) -> str:
    """The highest level a rule gives this concept reported alone (with the context cues any report has)."""
    level = "routine"
    for rule in rules:
        if not getattr(rule, "enabled", True) or not getattr(rule, "condition", ""):
            continue
        if any(term and term - set(CONTEXT) <= {name} for term in _terms(parse_condition(rule.condition))):
            rule_level = getattr(rule, "level", "emergency") or "emergency"
            if rule_level == "emergency" or level == "routine":
                level = rule_level
    return level


def _everyday(by_name: dict[str, Any], rules: list[Any], speaker: Any, stream: Any, per_term: int) -> list[Example]:
    """Negatives for the commonest false alarms: one everyday complaint reported now, and a request for help."""
    from inference.triage.engine import Triage

    rules_triage = Triage.from_rows(list(by_name.values()), rules, frozenset())
    examples = []
    for name in sorted(ALONE_NOT_EMERGENCY):
        if name not in by_name or _alone_level(name, rules) == "emergency":
            continue
        level = _alone_level(name, rules)
        rng = stream("everyday", name)
        say = speaker(rng)
        for _ in range(per_term * 2):
            _, has, _, _ = rng.choice(SUBJECTS)
            text = _noise(rng.choice(OPENERS) + f"{has} {say(name)}" + rng.choice(EVERYDAY_CONTEXT + STRONG), rng)
            # Some phrases are a red flag of their own too ("gasping" is breathless and a severe
            # breathing difficulty): the rules say what such a message is.
            if rules_triage.decide(text).level != "emergency":
                examples.append(Example(text, level, "everyday"))
    rng = stream("help requests")
    for _ in range(per_term * 3):
        text = rng.choice(HELP_REQUESTS).format(goal=rng.choice(GOALS))
        examples.append(Example(_noise(text, rng), "routine", "everyday"))
    rng = stream("mild complaints")
    for _ in range(per_term * 3):
        subject, has, _, _ = rng.choice(SUBJECTS)
        core = f"{has} {rng.choice(MILD)}" if rng.random() < 0.7 else f"{subject} cant stop {rng.choice(CANT_STOP)}"
        text = rng.choice(OPENERS) + core + rng.choice(STRONG + EVERYDAY_CONTEXT)
        examples.append(Example(_noise(text, rng), "routine", "everyday"))
    return examples


# A question about someone's long-term condition, medicine or a minor worry, told with a story (a
# diagnosis, a relative, a pregnancy): no red flag, however many people and worries it names. Written
# here after the consumer questions of 2026-12-04 were scored ("do statins make your muscles ache?"
# got 0.95), in other words: the figures on those questions are in sample from then on.
CONDITIONS = (
    "diabetes type 2 diabetes asthma eczema psoriasis gout arthritis high_blood_pressure high_cholesterol "
    "an_underactive_thyroid ibs acid_reflux migraines anaemia osteoporosis copd angina heart_failure "
    "kidney_stones coeliac_disease"
).split()
MEDICINES = (
    "warfarin statins metformin ramipril amlodipine levothyroxine sertraline omeprazole the_pill "
    "blood_thinners water_tablets inhalers steroids antibiotics insulin"
).split()
MINOR_WORRIES = [
    "a flat spot on the back of her head",
    "cradle cap",
    "a blocked tear duct",
    "a rash on his cheeks",
    "nappy rash",
    "a squint",
    "a lump behind his ear",
    "a birthmark on her arm",
    "white spots on her nails",
    "a bit of a lisp",
]
GOING_ROUND = ["chickenpox", "slapped cheek", "hand foot and mouth", "flu", "a tummy bug", "measles", "covid"]
CONSUMER_QUESTIONS = [
    "{person} was just diagnosed with {condition}, what should {they} eat and what should {they} avoid",
    "{person} has {condition}, are there foods {they} should avoid?",
    "{person} is on {medicine} after {their} operation, can {they} still drink coffee?",
    "{person} is on {medicine}, can {they} take ibuprofen with it",
    "do {medicine} make you tired? {person} started them 3 weeks ago and feels worn out",
    "{person} has {condition}, how can we help {them} stay well",
    "my {age} old has {worry}, will it go away by itself",
    "my {age} old has {worry}, should we see the gp about it",
    "theres {infection} going round and im {weeks} weeks pregnant, should i be worried",
    "im {weeks} weeks pregnant and {person} has {infection}, is that a problem",
    "{person} was told {they} have {condition} at {years}, what does that mean for {them}",
]
PEOPLE_ASKED_ABOUT = [
    ("my mum", "she", "her", "her"),
    ("my dad", "he", "his", "him"),
    ("my husband", "he", "his", "him"),
    ("my wife", "she", "her", "her"),
    ("my nan", "she", "her", "her"),
    ("my grandad", "he", "his", "him"),
    ("my son", "he", "his", "him"),
]


def _consumer_questions(rng: random.Random, per_term: int) -> list[Example]:
    examples = []
    for _ in range(per_term * 6):
        person, they, their, them = rng.choice(PEOPLE_ASKED_ABOUT)
        text = rng.choice(CONSUMER_QUESTIONS).format(
            person=person,
            they=they,
            their=their,
            them=them,
            condition=rng.choice(CONDITIONS).replace("_", " "),
            medicine=rng.choice(MEDICINES).replace("_", " "),
            age=rng.choice(["4 month", "6 month", "1 year", "2 year", "3 year"]),
            worry=rng.choice(MINOR_WORRIES),
            infection=rng.choice(GOING_ROUND),
            weeks=rng.randint(8, 38),
            years=rng.randint(30, 80),
        )
        examples.append(Example(_noise(text, rng), "routine", "everyday"))
    return examples


def _positive(names: list[str], say: Any, rng: random.Random) -> str:
    subject, has, is_, _ = rng.choice(SUBJECTS)
    phrases = [say(name) for name in rng.sample(names, len(names))]
    joined = rng.choice([" and ", ", ", " also ", " with "]).join(phrases)
    core = rng.choice(
        [
            f"{has} {joined}",
            f"{joined}",
            f"{is_} {joined}",
            f"{subject} {joined} right now",
            f"{joined} started 20 minutes ago",
            f"i think {subject} {joined}",
        ]
    )
    text = rng.choice(OPENERS) + core + rng.choice(CLOSERS)
    if rng.random() < 0.25:  # a long message with the red flag in the middle
        before, after = rng.sample(FILLERS, 2)
        text = f"{before}. {text}. {after}"
    return _noise(text, rng)


def _negative(clinical: list[str], names: list[str], say: Any, rng: random.Random) -> tuple[str, str]:
    """A message that mentions the same concepts and is not a report: a question, the past, a negation."""
    subject, *_ = rng.choice(SUBJECTS)
    a = say(rng.choice(clinical))
    b = say(rng.choice(names))
    kind = rng.choice(["about", "about", "past", "negated", "benign"])
    if kind == "about":
        text = rng.choice(ABOUT).format(a=a, b=b)
    elif kind == "past":
        text = rng.choice(PAST).format(subject=subject, a=a, b=b, when=rng.choice(WHEN), question=rng.choice(QUESTIONS))
    elif kind == "negated":
        text = rng.choice(NEGATED).format(subject=subject, a=a, b=b)
    else:
        text = rng.choice(BENIGN).format(
            subject=subject,
            a=a,
            pronoun=rng.choice(["he", "she", "i"]),
            age=rng.randrange(5, 40),
            year=rng.randrange(2005, 2024),
            normal=rng.choice(["37.2", "37.5", "36.9", "99"]),
        )
    if rng.random() < 0.3:  # positives open with "help" and "urgent" too: the words alone must not decide
        text = rng.choice(OPENERS) + text + rng.choice(CLOSERS)
    return _noise(text, rng), kind


def hand_written(path: Path = PHRASINGS) -> list[Example]:
    """The hand-written phrasings (fixtures/triage_phrasings.jsonl): text, level, kind."""
    examples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            examples.append(Example(row["text"], row["level"], row.get("kind", "hand-written")))
    return examples


def iter_corpus(concepts: Iterable[Any], rules: Iterable[Any]) -> Iterator[Example]:
    concepts, rules = list(concepts), list(rules)
    yield from generate(concepts, rules)
    yield from hand_written()
