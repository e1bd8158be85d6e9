"""Triage: recall and false alarms on the held-out set and the generated corpus, and its speed.

    .venv/bin/python bench/triage_eval.py [--repeat 5] [--no-save]

Runs on the shipped concepts and rules (the fixtures), with no database and no language model.
Each figure says what it is measured on:

- ``heldout_1`` to ``heldout_8``: bench/data/triage_heldout*.jsonl, each written by someone who had
  not read the concepts and rules, and scored once before anything was changed for it (those first
  figures, the only out-of-sample ones, are in BENCHMARKS.md). Each was then read and its misses
  shaped phrases, rules or the classifier gate, so the figures printed here are in sample: they show
  the fixes held, not how triage does on new messages. A new set is the only way to measure that;
- ``labelled``: bench/data/labelled_questions.jsonl, the pipeline's evaluation set; the triage tests
  and training phrasings no longer share phrasings with it (out of sample for the classifier; the
  rules' author has read it);
- ``generated``: the classifier's training corpus (in sample for both);
- ``generated-fresh``: the same generator with another seed (new draws, same templates and phrases);
- ``hand-written``: fixtures/triage_phrasings.jsonl (in sample: training data and test phrasings).

Timing: ``assess`` per message (rules, then the classifier), p50 and p95 over every message of every
set, repeated; and the cold costs (compiling concepts, loading or training the classifier).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, percentile, save, setup_django

HELDOUT = ROOT / "bench" / "data" / "triage_heldout.jsonl"
HELDOUT_2 = ROOT / "bench" / "data" / "triage_heldout_2.jsonl"
HELDOUT_3 = ROOT / "bench" / "data" / "triage_heldout_3.jsonl"
HELDOUT_4 = ROOT / "bench" / "data" / "triage_heldout_4.jsonl"
HELDOUT_5 = ROOT / "bench" / "data" / "triage_heldout_5.jsonl"
HELDOUT_6 = ROOT / "bench" / "data" / "triage_heldout_6.jsonl"
HELDOUT_7 = ROOT / "bench" / "data" / "triage_heldout_7.jsonl"
HELDOUT_8 = ROOT / "bench" / "data" / "triage_heldout_8.jsonl"
LABELLED = ROOT / "bench" / "data" / "labelled_questions.jsonl"


def cpu_flags() -> str:
    """The CPU's instruction-set flags (the figures depend on them), from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def labelled_examples() -> list[Any]:
    from inference.triage.corpus import Example

    examples = []
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("emergency") is not None:
                level = "emergency" if row["emergency"] else "routine"
                examples.append(Example(row["question"], level, row.get("focus", "")))
    return examples


def timings(texts: list[str], repeat: int, classifier_on: bool) -> dict[str, Any]:
    from django.test import override_settings

    from inference import triage

    samples = []
    best = [float("inf")] * len(texts)  # each message's fastest run: the code's own cost, less the noise
    with override_settings(MEDBOT_TRIAGE_CLASSIFIER=classifier_on):
        triage.assess("warm up", count_hits=False)
        for _ in range(repeat):
            for index, text in enumerate(texts):
                started = time.perf_counter()
                triage.assess(text, count_hits=False)
                elapsed = (time.perf_counter() - started) * 1000
                samples.append(elapsed)
                best[index] = min(best[index], elapsed)
    return {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 0.5) or 0, 3),
        "p95_ms": round(percentile(samples, 0.95) or 0, 3),
        "max_ms": round(max(samples), 3),
        "p95_of_best_per_message_ms": round(percentile(best, 0.95) or 0, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="Timing passes over all messages.")
    parser.add_argument("--no-save", action="store_true", help="Print only; do not write bench/results/triage.json.")
    parser.add_argument("--show-misses", action="store_true", help="List every miss and false alarm.")
    arguments = parser.parse_args()
    setup_django()

    from inference import triage
    from inference.triage import classifier, corpus, evaluation

    started = time.perf_counter()
    shipped = triage.fixture_triage()
    compile_ms = (time.perf_counter() - started) * 1000
    # The bench reads the shipped data, not whatever the local database holds.
    triage.compiled._build = triage.fixture_triage  # type: ignore[method-assign]

    started = time.perf_counter()
    classifier.get()
    classifier_ready_s = time.perf_counter() - started

    concepts = triage.rows_from_fixture(triage.CONCEPTS_FIXTURE)
    rules = triage.rows_from_fixture(triage.RULES_FIXTURE)
    sets = {
        "heldout_8 (seen: scored once untuned, then its misses shaped phrases)": evaluation.load_jsonl(HELDOUT_8),
        "heldout_7 (seen: scored once untuned, then its misses shaped phrases)": evaluation.load_jsonl(HELDOUT_7),
        "heldout_6 (seen: scored once untuned, then its misses shaped phrases)": evaluation.load_jsonl(HELDOUT_6),
        "heldout_5 (seen: scored once untuned, then its misses shaped phrases)": evaluation.load_jsonl(HELDOUT_5),
        "heldout_4 (seen: scored once untuned, then its errors shaped phrases)": evaluation.load_jsonl(HELDOUT_4),
        "heldout_3 (seen: its misses shaped phrases)": evaluation.load_jsonl(HELDOUT_3),
        "heldout_1 (seen: its first-look errors shaped the classifier gate)": evaluation.load_jsonl(HELDOUT),
        "heldout_2 (seen: its first-look errors shaped the classifier gate)": evaluation.load_jsonl(HELDOUT_2),
        "labelled_questions (out of sample for the classifier)": labelled_examples(),
        "generated (in sample: training corpus)": corpus.generate(concepts, rules),
        "generated-fresh (seed 99: new draws, same templates)": corpus.generate(concepts, rules, per_term=4, seed=99),
        "hand-written (in sample)": corpus.hand_written(),
    }
    reports = {}
    for name, examples in sets.items():
        report = evaluation.report(name, evaluation.judge(examples, shipped, classifier.probability))
        print(evaluation.render(report))
        if arguments.show_misses or name.startswith("heldout"):
            for line in report.misses:
                print("  missed:", line)
            for line in report.alarms:
                print("  false alarm:", line)
        reports[name] = report.as_dict()
        if not name.startswith("heldout"):
            reports[name].pop("misses")
            reports[name].pop("false_alarms")

    texts = [example.text for examples in sets.values() for example in examples][:2000]
    speed = {
        "rules_only": timings(texts, arguments.repeat, classifier_on=False),
        "rules_and_classifier": timings(texts, arguments.repeat, classifier_on=True),
        "compile_concepts_and_rules_ms": round(compile_ms, 1),
        "classifier_ready_s": round(classifier_ready_s, 2),
        "classifier_cache": str(classifier._path(classifier.cache_key())),
    }
    print(json.dumps(speed, indent=2))
    data = {"command": "bench/triage_eval.py", "cpu_flags": cpu_flags(), "speed": speed, "reports": reports}
    if not arguments.no_save:
        save("triage", data)


if __name__ == "__main__":
    main()
