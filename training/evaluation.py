"""The evaluation gate: is the new adapter better than the base model at answering from the passages?

Both are asked the same held-out questions (``knowledge_set.evaluation_questions``: topics never
trained on), prompted exactly as serving prompts them, decoded greedily, and judged by serving's
own gates (``pipeline.judge``). Per model: the **gate pass rate** (answers that would be shown as
they are), the share of **unsupported sentences**, and **ROUGE-L** against the held-out passage.
The adapter *beats the base* when it is no worse on any of the three; otherwise activating it
needs an override with a reason (``TrainingRun.activate``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from inference import pipeline
from inference.engine.types import eos_ids
from inference.grounding import check_sentences
from inference.prompting import prompt_text
from inference.retrieval import retriever
from training.knowledge_set import EvaluationQuestion
from training.metrics import rouge_l_f1

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SAMPLES = 5  # before/after answers kept on the run for people to read


@dataclass(frozen=True)
class Scores:
    answers: int
    passed: int  # through both gates: shown to people as the model wrote it
    sentences: int
    unsupported: int  # sentences the passages do not support
    rouge_l: float  # mean ROUGE-L F1 against the held-out passage
    seconds: float

    @property
    def pass_rate(self) -> float:
        return self.passed / self.answers if self.answers else 0.0

    @property
    def unsupported_share(self) -> float:
        return self.unsupported / self.sentences if self.sentences else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "pass_rate": round(self.pass_rate, 4),
            "unsupported_share": round(self.unsupported_share, 4),
        }


def score(questions: Sequence[EvaluationQuestion], texts: Sequence[str], seconds: float) -> Scores:
    passed = sentences = unsupported = 0
    rouge = []
    for question, raw in zip(questions, texts, strict=True):
        verdict = pipeline.judge(question.question, raw, question.documents)
        passed += verdict.passed
        checks = check_sentences(
            verdict.text, [d.text for d in question.documents], question.question, retriever.index().is_specific
        )
        sentences += len(checks)
        unsupported += sum(not c.supported for c in checks)
        rouge.append(rouge_l_f1(verdict.text, question.reference))
    return Scores(
        answers=len(texts),
        passed=passed,
        sentences=sentences,
        unsupported=unsupported,
        rouge_l=round(statistics.fmean(rouge), 4) if rouge else 0.0,
        seconds=round(seconds, 1),
    )


def generate(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[EvaluationQuestion],
    max_new_tokens: int,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy answers to the questions, prompted as serving prompts (``prompting.prompt_text``),
    a batch at a time (left-padded, so every row continues from its own last token)."""
    import torch

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    texts: list[str] = []
    try:
        for start in range(0, len(questions), batch_size):
            batch = questions[start : start + batch_size]
            prompts = [prompt_text(tokenizer, q.question, (), q.grounding) for q in batch]
            encoded = tokenizer(
                prompts, return_tensors="pt", padding=True, add_special_tokens=not tokenizer.chat_template
            )
            with torch.inference_mode():
                output = model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    use_cache=True,
                    eos_token_id=eos_ids(model, tokenizer),
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = output[:, encoded["input_ids"].shape[1] :]
            texts.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
            if progress:
                progress(len(texts))
    finally:
        tokenizer.padding_side = side
    return texts


def compare(base: Scores, adapter: Scores) -> dict[str, Any]:
    """Whether the adapter is no worse than the base on every measure, and why not."""
    reasons = []
    if adapter.pass_rate < base.pass_rate:
        reasons.append(f"gate pass rate {adapter.pass_rate:.0%} < base {base.pass_rate:.0%}")
    if adapter.unsupported_share > base.unsupported_share:
        reasons.append(f"unsupported sentences {adapter.unsupported_share:.1%} > base {base.unsupported_share:.1%}")
    if adapter.rouge_l < base.rouge_l:
        reasons.append(f"ROUGE-L {adapter.rouge_l:.3f} < base {base.rouge_l:.3f}")
    return {
        "beats_base": not reasons and adapter.answers > 0,
        "reasons": reasons if adapter.answers else ["no held-out question could be asked"],
        "pass_rate_gain_pp": round(100 * (adapter.pass_rate - base.pass_rate), 1),
    }


@contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def evaluate(
    peft_model: Any,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[EvaluationQuestion],
    say: Callable[[str], None],
    max_new_tokens: int | None = None,
) -> dict[str, Any]:
    """Base (adapter switched off) against adapter on the same questions: scores, the verdict
    and a few before/after answers, as stored in ``TrainingRun.evaluation``."""
    limit = max_new_tokens or settings.MEDBOT_MAX_NEW_TOKENS
    results: dict[str, tuple[Scores, list[str]]] = {}
    with _eval_mode(peft_model):
        for name, switch in (("base", peft_model.disable_adapter), ("adapter", nullcontext)):
            say(f"Evaluating the {name} on {len(questions)} held-out questions …")
            started = time.monotonic()
            with switch():
                texts = generate(
                    peft_model,
                    tokenizer,
                    questions,
                    limit,
                    progress=lambda done, name=name: say(f"  {name}: {done}/{len(questions)} answered"),
                )
            scores = score(questions, texts, time.monotonic() - started)
            results[name] = (scores, texts)
            say(
                f"  {name}: gate pass rate {scores.pass_rate:.0%} · unsupported sentences "
                f"{scores.unsupported_share:.1%} · ROUGE-L {scores.rouge_l:.3f} · {scores.seconds:.0f} s"
            )
    (base, base_texts), (adapter, adapter_texts) = results["base"], results["adapter"]
    samples = [
        {
            "question": q.question,
            "base": pipeline.judge(q.question, b, q.documents).text,
            "adapter": pipeline.judge(q.question, a, q.documents).text,
        }
        for q, b, a in list(zip(questions, base_texts, adapter_texts, strict=True))[:SAMPLES]
    ]
    return {
        "questions": len(questions),
        "max_new_tokens": limit,
        "base": base.as_dict(),
        "adapter": adapter.as_dict(),
        "verdict": compare(base, adapter),
        "samples": samples,
    }
