"""Before and after: the base model and a trained adapter answer the same questions, side by side.

    python bench/adapter_samples.py --run 2 [--questions bench/data/adapter_questions.txt]

The questions are ours (one per line), on topics of the curated entries (our own words), so the
answers can be shown in BENCHMARKS.md: the held-out evaluation that ``manage.py train`` runs asks
MedQuAD's questions, whose passages are not reproduced in this repository. Each question is
prompted as serving prompts it (retrieval, grounding, ``prompting.prompt_text``), decoded
greedily, and judged by serving's gates; the output is Markdown.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medbot_site.settings")


def main() -> None:
    import django

    django.setup()
    from django.conf import settings
    from peft import PeftModel

    from inference import pipeline, registry
    from inference.adapters import resolve_adapter_path
    from training.evaluation import generate
    from training.knowledge_set import EvaluationQuestion, grounded
    from training.models import TrainingRun

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=int, required=True, help="TrainingRun id whose adapter to compare.")
    parser.add_argument("--questions", default=str(Path(__file__).parent / "data" / "adapter_questions.txt"))
    args = parser.parse_args()

    run = TrainingRun.objects.get(pk=args.run)
    texts = [line.strip() for line in Path(args.questions).read_text().splitlines() if line.strip()]
    questions = []
    for text in texts:
        item = grounded(text)
        if item is None:
            print(f"(no passage found for {text!r}: skipped)", file=sys.stderr)
            continue
        questions.append(EvaluationQuestion(text, "", item.documents, item.grounding))
    model, tokenizer = registry.load_base(run.base_model, Path(settings.MEDBOT_MODEL_CACHE))
    peft_model = PeftModel.from_pretrained(model, str(resolve_adapter_path(run.adapter_path)))
    peft_model.eval()
    with peft_model.disable_adapter():
        before = generate(peft_model, tokenizer, questions, settings.MEDBOT_MAX_NEW_TOKENS)
    after = generate(peft_model, tokenizer, questions, settings.MEDBOT_MAX_NEW_TOKENS)

    def shown(question: EvaluationQuestion, raw: str) -> str:
        verdict = pipeline.judge(question.question, raw, question.documents)
        mark = "passes the gate" if verdict.passed else f"**refused** ({verdict.problem or 'unsupported sentences'})"
        return f"{' '.join(verdict.text.split())} — _{mark}_"

    print(f"Run {run.pk} ({run.version}) against {run.base_model}\n")
    for question, base_text, adapter_text in zip(questions, before, after, strict=True):
        sources = ", ".join(d.title for d in question.documents)
        print(f"**{question.question}** (passages: {sources})\n")
        print(f"- base: {shown(question, base_text)}")
        print(f"- adapter: {shown(question, adapter_text)}\n")


if __name__ == "__main__":
    main()
