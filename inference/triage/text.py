"""Text clean-up for triage: one spelling for the concept matcher to look for.

``normalise`` lower-cases, drops apostrophes ("can't" -> "cant"), turns punctuation into spaces and fixes
the misspellings that would hide a red flag. ``prepare`` does the same but keeps clause boundaries as
" | " so that negation and tense stay inside the clause they belong to ("no fever, just a stiff neck").
"""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = re.compile(r"['’‘`´]")
# Everything that is not a letter, digit or space becomes a space, except a decimal point between
# digits, so that "38.5" stays one temperature.
_PUNCTUATION = re.compile(r"(?!(?<=\d)\.(?=\d))[^\w\s|]|_")
_WHITESPACE = re.compile(r"\s+")
# Clause ends: sentence punctuation, commas, line breaks, and the words that turn a sentence round.
_CLAUSE_END = re.compile(r"(?!(?<=\d)\.(?=\d))[.!?;,:\n\r()]+|\s(?=(?:but|however|although|though)\s)")
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d\d?(?!\d))")
_NUMBER_UNIT = re.compile(r"(?<=\d)(?=[a-z])|(?<=[a-z])(?=\d)")

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
    "haveing": "having",
    "havin": "having",
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
    # A car's brakes, not "broke" (a broken bone): "new brake pads", "the brake pedal".
    (re.compile(r"\bbrakes? (pads?|pedals?|fluid|lights?|discs?|disks?|shoes|calipers?|lines?)\b"), r"car \1"),
    (re.compile(r"\bi m\b"), "im"),
    # "I'll" loses its apostrophe to "ill" (unwell): "my friend says ill get a blood clot from the pill".
    (re.compile(r"\bill (?=(get|be|have|go|call|take|try|ask|need|check)\b)"), "i will "),
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


def _fix_words(text: str) -> str:
    text = _WORD.sub(lambda match: _WORD_FIXES.get(match.group(), match.group()), text)
    for pattern, replacement in _PHRASE_FIXES:
        text = pattern.sub(replacement, text)
    return text


def normalise(text: str) -> str:
    """Lower case, apostrophes dropped ("can't" -> "cant"), other punctuation turned into spaces,
    whitespace collapsed, and triage-relevant misspellings fixed ("hart" -> "heart")."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _APOSTROPHES.sub("", text)
    text = _PUNCTUATION.sub(" ", text.replace("|", " "))
    text = _WHITESPACE.sub(" ", text).strip()
    return _fix_words(text)


def prepare(text: str) -> str:
    """``normalise`` with clause boundaries kept as " | " and numbers split from units ("38c" -> "38 c").

    The result starts and ends with a space so that every word has a space on either side."""
    text = unicodedata.normalize("NFKC", str(text)).lower().replace("|", " ")
    text = _APOSTROPHES.sub("", text)
    text = _DECIMAL_COMMA.sub(".", text)  # "38,5" is a temperature written the continental way
    text = _CLAUSE_END.sub(" | ", text)
    text = _PUNCTUATION.sub(" ", text)
    text = _NUMBER_UNIT.sub(" ", text)
    text = _WHITESPACE.sub(" ", text).strip()
    text = _fix_words(text)
    return f" {text} "
