"""Training that teaches answering from the passages: the prompt is serving's, the examples come
from the knowledge base, and an adapter that does worse than the base model is not activated
without a recorded override."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from inference import pipeline
from inference.engine import GenerationRequest
from inference.grounding import sentences
from inference.prompting import Turn, prompt_text, training_text
from tests.tiny_model import load_engine
from training import evaluation, knowledge_set
from training.evaluation import Scores, compare
from training.models import ActivationRefused, TrainingExample, TrainingRun
from training.pipeline import PadCollator, TrainConfig, encode_example, run

GROUNDING = "[1] What is gout?\nGout is a kind of arthritis caused by crystals of uric acid forming in a joint."


# --- one prompt for serving and training --------------------------------------------------------


def test_the_training_prompt_is_the_prompt_the_engine_sends(tiny_gpt2, tmp_path):
    engine = load_engine(tiny_gpt2, tmp_path / "cache")
    history = (Turn("user", "what helps a headache"), Turn("assistant", "rest and water"))
    request = GenerationRequest(question="what is gout", history=history, grounding=GROUNDING)
    prompt, completion = training_text(engine.tokenizer, "what is gout", "gout is arthritis", GROUNDING, history)
    assert prompt == engine.prompt_text(request)
    assert "Reference passages:" in prompt and "uric acid" in prompt  # the grounding is in it
    assert completion.startswith("gout is arthritis")


def test_a_chat_template_prompt_is_the_same_in_training_and_serving(tiny_gpt2):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    prompt, completion = training_text(tokenizer, "what is gout", "gout is arthritis", GROUNDING)
    assert prompt == prompt_text(tokenizer, "what is gout", (), GROUNDING)
    assert completion == "gout is arthritis<|end|>"  # the template's own end of turn


def test_only_the_answer_window_reaches_the_output_head_and_the_loss_is_unchanged(tiny_gpt2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    features = [
        encode_example(tokenizer, "what is gout", "gout is arthritis", 512, GROUNDING),
        encode_example(tokenizer, "what helps a headache", "drink plenty of water rest", 512, ""),
    ]
    batch = PadCollator(tokenizer.pad_token_id)(features)
    longest = batch["input_ids"].shape[1]
    assert batch["logits_to_keep"] < longest  # the prompt before the first answer is left out
    full_labels = torch.full((2, longest), -100)
    for row, feature in enumerate(features):
        full_labels[row, : len(feature["labels"])] = torch.tensor(feature["labels"])
    with torch.no_grad():
        windowed = model(**batch).loss
        whole = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=full_labels).loss
    assert torch.allclose(windowed, whole, atol=1e-6)


# --- examples from the knowledge base ---------------------------------------------------------


def test_examples_from_the_knowledge_answer_from_their_own_prompt(curated_data, knowledge_base, monkeypatch):
    monkeypatch.setattr(knowledge_set, "is_held_out", lambda focus: focus == "Palpitations")
    report = knowledge_set.build_from_knowledge(50, seed=0, wordings=1)
    examples = list(TrainingExample.objects.filter(origin=TrainingExample.Origin.KNOWLEDGE))
    assert report.created == len(examples) >= 4
    assert {e.passage.focus for e in examples} <= {"Gout", "High Blood Pressure"}  # never the held-out topic
    assert {e.provenance["wording"] for e in examples} == {"own", "reworded"}
    for example in examples:
        # Serving's grounding for the question, and an answer made only of its sentences.
        hits = pipeline.find_passages(example.question)
        assert example.grounding == pipeline.grounding_for(example.question, [h.document for h in hits])
        assert all(sentence in example.grounding for sentence in sentences(example.answer))
        assert pipeline.judge(example.question, example.answer, [h.document for h in hits]).passed
    # Again: nothing twice.
    again = knowledge_set.build_from_knowledge(50, seed=0, wordings=1)
    assert again.created == 0 and TrainingExample.objects.count() == len(examples) + _fixture_count()


def _fixture_count() -> int:
    return TrainingExample.objects.exclude(origin=TrainingExample.Origin.KNOWLEDGE).count()


def test_an_example_whose_passage_is_not_retrieved_is_skipped(curated_data, knowledge_base, monkeypatch):
    monkeypatch.setattr(knowledge_set, "is_held_out", lambda focus: False)
    monkeypatch.setattr(pipeline, "find_passages", lambda question, history=(): [])
    report = knowledge_set.build_from_knowledge(10)
    assert report.created == 0 and report.skipped["found nothing"] > 0


def test_the_build_command_needs_knowledge_and_reports_what_it_wrote(curated_data, knowledge_base, monkeypatch):
    monkeypatch.setattr(knowledge_set, "is_held_out", lambda focus: focus == "Palpitations")
    out = StringIO()
    call_command("build_training_set", "--from-knowledge", "3", "--no-progress", stdout=out)
    assert "3 examples written" in out.getvalue()
    assert TrainingExample.objects.filter(origin="knowledge").count() == 3
    with pytest.raises(CommandError, match="positive"):
        call_command("build_training_set", "--from-knowledge", "0")


def test_the_held_out_split_is_stable_and_about_one_topic_in_ten():
    names = [f"condition {i}" for i in range(2000)]
    held = [n for n in names if knowledge_set.is_held_out(n)]
    assert 150 < len(held) < 250
    assert held == [n for n in names if knowledge_set.is_held_out(n)]
    assert knowledge_set.is_held_out("Gout") == knowledge_set.is_held_out("  gout ")


# --- the evaluation gate --------------------------------------------------------------------


def scores(pass_rate: float, unsupported: float, rouge: float) -> Scores:
    return Scores(
        answers=10,
        passed=round(pass_rate * 10),
        sentences=10,
        unsupported=round(unsupported * 10),
        rouge_l=rouge,
        seconds=1.0,
    )


def test_an_adapter_worse_than_the_base_on_any_measure_does_not_beat_it():
    base = scores(0.2, 0.5, 0.30)
    assert compare(base, scores(0.6, 0.2, 0.35))["beats_base"]
    assert compare(base, scores(0.6, 0.2, 0.35))["pass_rate_gain_pp"] == 40.0
    assert not compare(base, scores(0.1, 0.2, 0.35))["beats_base"]
    assert not compare(base, scores(0.6, 0.6, 0.35))["beats_base"]
    verdict = compare(base, scores(0.6, 0.2, 0.25))
    assert not verdict["beats_base"] and verdict["reasons"] == ["ROUGE-L 0.250 < base 0.300"]


def finished(tmp_path: Path, verdict: dict) -> TrainingRun:
    (tmp_path / "run").mkdir(exist_ok=True)
    return TrainingRun.objects.create(
        base_model="x",
        status=TrainingRun.Status.SUCCEEDED,
        adapter_path=str(tmp_path / "run"),
        evaluation={"verdict": verdict},
    )


def test_activating_an_adapter_that_scored_below_the_base_needs_a_recorded_override(db, tmp_path):
    worse = finished(tmp_path, compare(scores(0.5, 0.1, 0.3), scores(0.2, 0.4, 0.2)))
    with pytest.raises(ActivationRefused, match="did not beat the base"):
        worse.activate()
    with pytest.raises(ActivationRefused, match="reason"):
        worse.activate(force=True, reason="  ")
    worse.refresh_from_db()
    assert not worse.active and not worse.activation_override
    worse.activate(force=True, reason="clinic asked for its tone", by="alice")
    worse.refresh_from_db()
    assert worse.active and "by alice: clinic asked for its tone" in worse.activation_override
    better = finished(tmp_path, compare(scores(0.1, 0.5, 0.2), scores(0.5, 0.1, 0.3)))
    better.activate()
    better.refresh_from_db()
    assert better.active and not better.activation_override


@pytest.mark.slow
def test_train_evaluates_against_the_base_and_refuses_a_worse_adapter_unless_forced(
    curated_data, knowledge_base, tiny_gpt2, settings, monkeypatch
):
    """The tiny model's answers are scripted at the generation seam: the base copies the passage,
    the adapter invents a drug. Everything else (questions, gates, scores, verdict) is real."""
    monkeypatch.setattr(knowledge_set, "is_held_out", lambda focus: focus == "Gout")
    knowledge_set.build_from_knowledge(20)
    settings.MEDBOT_BASE_MODEL = str(tiny_gpt2)

    def scripted(model, tokenizer, questions, max_new_tokens, batch_size=8, progress=None):
        adapter_on = not getattr(model, "_medbot_adapter_off", False)
        return [
            "Gout is cured by zylofenamab in one week." if adapter_on else q.reference.split(". ")[0] + "."
            for q in questions
        ]

    def disable_adapter(self):
        from contextlib import contextmanager

        @contextmanager
        def off():
            self._medbot_adapter_off = True
            try:
                yield
            finally:
                self._medbot_adapter_off = False

        return off()

    from peft import PeftModel

    monkeypatch.setattr(PeftModel, "disable_adapter", disable_adapter)
    monkeypatch.setattr(evaluation, "generate", scripted)
    out = StringIO()
    call_command("train", "--max-steps", "2", "--activate", "--eval-questions", "4", "--no-progress", stdout=out)
    refused = TrainingRun.objects.get()
    assert refused.status == TrainingRun.Status.SUCCEEDED and not refused.active
    report = refused.evaluation
    assert report["questions"] == 2  # the two held-out gout passages
    assert report["base"]["pass_rate"] == 1.0 and report["adapter"]["pass_rate"] == 0.0
    assert report["adapter"]["unsupported_share"] > report["base"]["unsupported_share"]
    assert not report["verdict"]["beats_base"] and len(report["samples"]) == 2
    assert "Not activated" in out.getvalue() and "gate pass rate: 100% → 0%" in out.getvalue()

    call_command(
        "train",
        "--max-steps",
        "2",
        "--activate",
        "--force",
        "tone matters more here",
        "--eval-questions",
        "4",
        "--no-progress",
        stdout=StringIO(),
    )
    forced = TrainingRun.objects.order_by("-pk").first()
    assert forced.active and "tone matters more here" in forced.activation_override


def test_force_without_activate_is_refused_before_anything_runs(db):
    with pytest.raises(CommandError, match="--force"):
        call_command("train", "--force", "why not")
    assert not TrainingRun.objects.exists()


@pytest.mark.slow
def test_the_evaluation_generates_with_the_real_model_with_and_without_the_adapter(
    curated_data, knowledge_base, tiny_gpt2, monkeypatch
):
    monkeypatch.setattr(knowledge_set, "is_held_out", lambda focus: focus == "Gout")
    knowledge_set.build_from_knowledge(20)
    trained = run(TrainConfig(base=str(tiny_gpt2), max_steps=2, eval_questions=3, progress_bar=False))
    report = trained.evaluation
    assert report["questions"] == 2
    for name in ("base", "adapter"):
        assert report[name]["answers"] == 2 and 0 <= report[name]["rouge_l"] <= 1
    assert {"question", "base", "adapter"} <= set(report["samples"][0])


@pytest.mark.slow
def test_an_existing_adapter_can_be_evaluated_again(curated_data, knowledge_base, tiny_gpt2, monkeypatch):
    monkeypatch.setattr(knowledge_set, "is_held_out", lambda focus: focus == "Gout")
    knowledge_set.build_from_knowledge(20)
    trained = run(TrainConfig(base=str(tiny_gpt2), max_steps=2, eval_questions=0, progress_bar=False))
    assert trained.evaluation["verdict"]["reasons"] == ["not evaluated (--eval-questions 0)"]
    out = StringIO()
    call_command("evaluate_adapter", str(trained.pk), "--eval-questions", "2", stdout=out)
    trained.refresh_from_db()
    assert trained.evaluation["questions"] == 2 and "base" in trained.evaluation
    assert "Earlier evaluation" in trained.notes and "gate pass rate" in out.getvalue()
    with pytest.raises(CommandError, match="There is no training run"):
        call_command("evaluate_adapter", "999")
