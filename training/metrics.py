"""ROUGE-L, dependency-free: training's evaluation gate and the benchmarks score answers with it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, as ROUGE's reference implementation uses (no stemming)."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004): one big-int
    operation per token of ``second``, so a 100-word answer against a 3,000-word MedQuAD
    reference costs milliseconds instead of the 300,000 steps of the textbook table."""
    if not first or not second:
        return 0
    masks: dict[str, int] = {}
    for position, token in enumerate(first):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(first)) - 1
    row = full  # bit i set = "no match used up to position i yet"
    for token in second:
        matches = row & masks.get(token, 0)
        row = ((row + matches) | (row - matches)) & full
    return len(first) - row.bit_count()


def rouge_l_f1(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (precision and recall of the longest common word subsequence, beta = 1)."""
    cand, ref = tokenize(candidate), tokenize(reference)
    common = lcs_length(ref, cand)
    if common == 0:
        return 0.0
    precision, recall = common / len(cand), common / len(ref)
    return 2 * precision * recall / (precision + recall)
