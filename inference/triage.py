"""Emergency triage: the check that runs before any model sees a question.

A question that describes a red-flag emergency happening now (crushing chest pain, a drooping face,
someone who will not wake up) is answered with the matching rule's emergency text and nothing else.
Questions *about* the same conditions ("how can I lower my risk of a stroke?") are not emergencies and
go on to the normal answer path.

This module is pure Python: the caller loads the enabled ``EmergencyRule`` rows, compiles them once with
``compile_rules`` and hands them in. Rule patterns are regular expressions written against ``normalise``'s
output (lower case, no apostrophes, no punctuation, common misspellings fixed), so curators write one
spelling instead of every variant.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inference.models import EmergencyRule  # noqa: F401  (documents what compile_rules usually receives)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledEmergencyRule:
    rule_id: int | None
    name: str
    response: str
    priority: int
    patterns: tuple[re.Pattern[str], ...]


# --- Normalisation --------------------------------------------------------------------------------

_APOSTROPHES = re.compile(r"['’‘`´]")
# Everything that is not a letter, digit or space becomes a space, except a decimal point between
# digits, so that "38.5" stays one temperature.
_PUNCTUATION = re.compile(r"(?!(?<=\d)\.(?=\d))[^\w\s]|_")
_WHITESPACE = re.compile(r"\s+")

# Misspellings that would make a red flag invisible to the patterns. Keep this to words that matter
# for triage; it is not a spell checker.
_WORD_FIXES: dict[str, str] = {
    # heart attack
    "hart": "heart",
    "heartattack": "heart attack",
    "atack": "attack",
    "attak": "attack",
    "attck": "attack",
    "pian": "pain",
    # breathing
    "breth": "breathe",
    "brethe": "breathe",
    "breathe": "breathe",
    "breate": "breathe",
    "breahte": "breathe",
    "brething": "breathing",
    "breathin": "breathing",
    "breating": "breathing",
    "brathing": "breathing",
    "breahting": "breathing",
    "breathng": "breathing",
    "chocking": "choking",
    "choaking": "choking",
    "chokeing": "choking",
    "chokin": "choking",
    "wheezin": "wheezing",
    # consciousness and seizures
    "concious": "conscious",
    "consious": "conscious",
    "conscous": "conscious",
    "unconcious": "unconscious",
    "unconsious": "unconscious",
    "unconscous": "unconscious",
    "unconcsious": "unconscious",
    "unresponsve": "unresponsive",
    "unresposive": "unresponsive",
    "collaped": "collapsed",
    "colapsed": "collapsed",
    "collasped": "collapsed",
    "siezure": "seizure",
    "siezures": "seizures",
    "seizur": "seizure",
    "sezure": "seizure",
    "seisure": "seizure",
    "seazure": "seizure",
    "seziure": "seizure",
    "ceasure": "seizure",
    "siezing": "seizing",
    "seazing": "seizing",
    # stroke
    "stroek": "stroke",
    "strok": "stroke",
    "stroak": "stroke",
    "storke": "stroke",
    "droping": "drooping",
    "slured": "slurred",
    "slurrd": "slurred",
    "numbnes": "numbness",
    # allergy
    "anaphalaxis": "anaphylaxis",
    "anaphylaxsis": "anaphylaxis",
    "anaphlaxis": "anaphylaxis",
    "anafylaxis": "anaphylaxis",
    "anaphylasix": "anaphylaxis",
    "anaphalactic": "anaphylactic",
    "anafylactic": "anaphylactic",
    "alergic": "allergic",
    "allergik": "allergic",
    "alergy": "allergy",
    "tounge": "tongue",
    "thoat": "throat",
    "throut": "throat",
    "swolen": "swollen",
    # self-harm
    "sucidal": "suicidal",
    "suicidle": "suicidal",
    "suicdal": "suicidal",
    "suisidal": "suicidal",
    "sucide": "suicide",
    "suicde": "suicide",
    "suiside": "suicide",
    "kil": "kill",
    "myslef": "myself",
    "myslf": "myself",
    "wanna": "want to",
    "gonna": "going to",
    # overdose and poisoning
    "od": "overdosed",
    "overdos": "overdose",
    "ovrdose": "overdose",
    "overdossed": "overdosed",
    "pils": "pills",
    "tablits": "tablets",
    "paracetomol": "paracetamol",
    "paracetemol": "paracetamol",
    # bleeding, pregnancy, fever, headache
    "bleading": "bleeding",
    "bleding": "bleeding",
    "bledding": "bleeding",
    "bleedin": "bleeding",
    "pregnent": "pregnant",
    "pregant": "pregnant",
    "pregnat": "pregnant",
    "preggo": "pregnant",
    "feaver": "fever",
    "fevor": "fever",
    "temprature": "temperature",
    "tempreture": "temperature",
    "temperture": "temperature",
    "headach": "headache",
    "hedache": "headache",
    "headake": "headache",
    "headace": "headache",
    "meningitus": "meningitis",
    "menengitis": "meningitis",
    "meningits": "meningitis",
    "sepis": "sepsis",
    "vomitting": "vomiting",
    "vommiting": "vomiting",
    "vomting": "vomiting",
    "babys": "baby",
    "ambulence": "ambulance",
    "emergancy": "emergency",
    # contractions, written one way so that patterns need only one spelling
    "cannot": "cant",
    "carnt": "cant",
    "cnt": "cant",
}
_WORD = re.compile(r"\w+")
_PHRASE_FIXES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bcan not\b"), "cant"),
    (re.compile(r"\bdo not\b"), "dont"),
    (re.compile(r"\bdoes not\b"), "doesnt"),
    (re.compile(r"\bwill not\b"), "wont"),
    (re.compile(r"\bis not\b"), "isnt"),
    (re.compile(r"\bhas not\b"), "hasnt"),
    (re.compile(r"\bhave not\b"), "havent"),
    (re.compile(r"\bcould not\b"), "couldnt"),
    (re.compile(r"\bhead ache\b"), "headache"),
    (re.compile(r"\bi m\b"), "im"),
    # "OD'd on" loses its apostrophe to "odd on"; only rewrite it after a person, not in "feels odd on".
    (
        re.compile(
            r"\b(has|have|had|just|i|he|she|they|we|ive|hes|shes|friend|son|daughter|brother|sister|mum|mom|dad"
            r"|partner|husband|wife|boyfriend|girlfriend) (odd|oded) on\b"
        ),
        r"\1 overdosed on",
    ),
    # "breath" used as a verb ("cant breath", "hard to breath") is "breathe"; "short of breath" stays.
    (re.compile(r"\b(cant|couldnt|wont|not|to|can|barely|hardly|i|he|she|they|we|you) breath\b"), r"\1 breathe"),
)


def normalise(text: str) -> str:
    """Lower case, apostrophes dropped ("can't" -> "cant"), other punctuation turned into spaces,
    whitespace collapsed, and triage-relevant misspellings fixed ("hart" -> "heart")."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _APOSTROPHES.sub("", text)
    text = _PUNCTUATION.sub(" ", text)
    text = _WHITESPACE.sub(" ", text).strip()
    text = _WORD.sub(lambda match: _WORD_FIXES.get(match.group(), match.group()), text)
    for pattern, replacement in _PHRASE_FIXES:
        text = pattern.sub(replacement, text)
    return text


# --- The educational guard ------------------------------------------------------------------------

# Wording that makes a question about a condition rather than a report of one.
_EDUCATIONAL = re.compile(
    r"\b("
    r"how (can|do|could|should|would) (i|you|we|people|one) (lower|reduce|prevent|avoid|cut)"
    r"|prevent\w*|avoid\w*|risk (of|factors?)|lower (my|your|the|his|her) risk"
    r"|rehab\w*|recover\w*"
    r"|what (is|are|does|do|causes|happens)|whats (a|an|the)"
    r"|(signs?|symptoms?|causes?) of"
    r"|can (\w+ ){1,3}(cause|lead to|turn into)|turn into|lead to"
    r"|history of|years? ago|months? ago|last (year|month)|in the past"
    r"|statistics|how common|how many people|survival rate|life expectancy|difference between"
    r"|how long (does|do|can|should|will|after)|how is \w+ (treated|diagnosed|spread)|treatment (for|of)"
    r"|explain|tell me about|meaning of|definition|vaccines?|vaccinations?"
    r"|what (diet|foods?)|maximum dose|max dose|how much \w+ can i take|first aid (course|training|kit)|is it safe"
    r")\b"
)

# Wording that says it is happening now. Any of these turns the guard off.
_ACUTE = re.compile(
    r"\b("
    r"right now|currently|at the moment|as we speak|just now|happening (now|to (me|him|her|them|us))"
    r"|(what is|whats) (wrong|happening|going on)"
    r"|(is|im|am|hes|shes|are|theyre|were) having"
    r"|i think (im|i am|hes|shes|theyre|its|this is|(he|she|they|my \w+|mum|mom|dad) (is|might|may|just))"
    r"|cant breathe|not breathing|stopped breathing"
    r"|please help|help me(?! (understand|learn|know|figure))|need help|(somebody|someone) help"
    r"|just (took|taken|swallowed|drank|ate|collapsed|fell|passed out|happened|started)"
    r"|(wont|cant|not) wak(e|ing)"
    r"|911|999|112|ambulance|emergency"
    r"|what (do|should|can) (i|we) do|(should|do) (i|we) (call|go)"
    r"|(\d+|a few|few|ten|twenty|thirty|an|one|two) (min|mins|minutes|hour|hours) ago"
    r"|(is|im|hes|shes|theyre) (choking|bleeding|seizing|fitting|convulsing|unconscious|unresponsive|turning blue)"
    r")\b"
)

# Intent to self-harm is never educational, however it is phrased ("is it normal to want to kill myself").
_SELF_HARM_INTENT = re.compile(
    r"\b("
    r"(kill|killing|end|ending|take|taking) (myself|my self|my life|my own life)"
    r"|(want|wanted|going|try|trying|tried|plan|planning) to (hurt|harm|cut|kill) (myself|my self)"
    r"|(hurting|harming|cutting) myself|suicidal"
    r"|(want|wanting|going|plan|planning|ready|decided) to (die|end it|end it all|commit suicide)"
    r"|(dont|no longer) want to (live|be alive|be here|exist|wake up)"
    r")\b"
)


def _looks_educational(normalised: str) -> bool:
    """True for a question about a condition with nothing that says it is happening now."""
    if _SELF_HARM_INTENT.search(normalised) or _ACUTE.search(normalised):
        return False
    return _EDUCATIONAL.search(normalised) is not None


# --- Rules ----------------------------------------------------------------------------------------


def compile_rules(rules: Iterable[Any]) -> list[CompiledEmergencyRule]:
    """Compile ``EmergencyRule`` rows (or any object with the same attributes) for ``find_emergency``.

    Disabled rules are skipped. A pattern that is not a valid regular expression is skipped with a
    warning, so one bad edit in the admin cannot switch triage off; a rule left with no valid pattern
    is skipped too. Returns the rules highest priority first.
    """
    compiled: list[CompiledEmergencyRule] = []
    for rule in rules:
        if not getattr(rule, "enabled", True):
            continue
        rule_id = getattr(rule, "pk", None)
        if rule_id is None:
            rule_id = getattr(rule, "id", None)
        patterns: list[re.Pattern[str]] = []
        for line in str(rule.patterns or "").splitlines():
            source = line.strip()
            if not source:
                continue
            try:
                patterns.append(re.compile(source, re.IGNORECASE))
            except re.error as error:
                logger.warning(
                    "Emergency rule %r (id %s): skipping invalid pattern %r: %s", rule.name, rule_id, source, error
                )
        if not patterns:
            logger.warning("Emergency rule %r (id %s) has no valid patterns; skipping it", rule.name, rule_id)
            continue
        compiled.append(
            CompiledEmergencyRule(
                rule_id=rule_id,
                name=rule.name,
                response=rule.response,
                priority=int(rule.priority),
                patterns=tuple(patterns),
            )
        )
    compiled.sort(key=lambda rule: (-rule.priority, rule.name))
    return compiled


def find_emergency(text: str, rules: Sequence[CompiledEmergencyRule]) -> CompiledEmergencyRule | None:
    """The highest-priority rule whose patterns match the question, or None.

    Returns None for an educational question ("what are the signs of a stroke?") unless it also says
    the emergency is happening now or expresses intent to self-harm.
    """
    normalised = normalise(text)
    if not normalised:
        return None
    # Stable sort: rules of equal priority keep the order compile_rules gave them.
    for rule in sorted(rules, key=lambda rule: -rule.priority):
        if any(pattern.search(normalised) for pattern in rule.patterns):
            return None if _looks_educational(normalised) else rule
    return None


def render_response(rule: CompiledEmergencyRule, number: str, crisis_line: str) -> str:
    """The rule's emergency text with the local emergency number and crisis line filled in."""
    # str.replace rather than str.format: curated text may contain other braces.
    return rule.response.replace("{number}", number).replace("{crisis_line}", crisis_line)
