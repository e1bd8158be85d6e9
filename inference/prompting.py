"""What text reaches the model, shared by inference and training so both see the same format."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SYSTEM_PROMPT = (
    "You are MedBot, a careful health information assistant. Give general, educational "
    "information in plain language. Do not diagnose, do not prescribe, and do not give "
    "medicine doses. Suggest seeing a doctor or pharmacist when it would help, and tell the "
    "person to call emergency services for anything that sounds urgent. Answer in a short "
    "paragraph."
)

# Used when the tokenizer has no chat template (GPT-2). Training formats examples the same way.
PLAIN_TEMPLATE_ROLES = {"system": "### Instructions", "user": "### Question", "assistant": "### Answer"}


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    content: str


GROUNDED_RULES = (
    "Answer only from the reference passages below. Use their words for every fact, name and "
    "number, and add nothing they do not say. If they do not answer the question, say that you "
    "do not know."
)


def system_message(grounding: str | None) -> str:
    # The passages are the only facts the model may use: the faithfulness gate checks its answer
    # against them afterwards, so the prompt asks for what the gate will accept. Timestamps and
    # user ids are never sent.
    if not grounding:
        return SYSTEM_PROMPT
    return f"{SYSTEM_PROMPT} {GROUNDED_RULES}\n\nReference passages:\n{grounding}"


def shared_start(tokenizer: PreTrainedTokenizerBase) -> str:
    """The text every grounded prompt begins with (template, system message, the rules, up to the
    passages): the engine computes its KV cache once and reuses it for every request."""
    marker = "\x00passages\x00"
    messages = [{"role": "system", "content": system_message(marker)}, {"role": "user", "content": "?"}]
    text = render(tokenizer, messages, add_generation_prompt=True)
    return text[: text.index(marker)]


def render(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict[str, str]], add_generation_prompt: bool) -> str:
    """Chat messages to prompt text, through the tokenizer's chat template where it has one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )
    parts = [f"{PLAIN_TEMPLATE_ROLES[m['role']]}\n{m['content']}\n" for m in messages]
    if add_generation_prompt:
        parts.append(f"{PLAIN_TEMPLATE_ROLES['assistant']}\n")
    return "\n".join(parts)


def build_messages(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    history: Sequence[Turn] = (),
    grounding: str | None = None,
    history_token_budget: int = 384,
) -> list[dict[str, str]]:
    """System message, then as many of the latest turns as fit the budget, then the question."""
    kept: list[dict[str, str]] = []
    used = 0
    for turn in reversed(history):
        cost = len(tokenizer(turn.content, add_special_tokens=False)["input_ids"]) + 4
        if used + cost > history_token_budget:
            break
        kept.insert(0, {"role": turn.role, "content": turn.content})
        used += cost
    # Templates want user/assistant alternation; a dangling assistant turn at the start is dropped.
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return [{"role": "system", "content": system_message(grounding)}, *kept, {"role": "user", "content": question}]


def prompt_text(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    history: Sequence[Turn] = (),
    grounding: str | None = None,
    history_token_budget: int = 384,
) -> str:
    """The whole prompt the model continues: what the engine sends, and what training trains on."""
    messages = build_messages(tokenizer, question, history, grounding, history_token_budget)
    return render(tokenizer, messages, add_generation_prompt=True)


def training_text(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    answer: str,
    grounding: str | None = None,
    history: Sequence[Turn] = (),
) -> tuple[str, str]:
    """(prompt, completion) for one training example: the prompt is ``prompt_text`` for the same
    question, history and grounding, so the adapter learns on exactly what serving sends."""
    prompt = prompt_text(tokenizer, question, history, grounding)
    end = tokenizer.eos_token or ""
    if getattr(tokenizer, "chat_template", None):
        # The template closes an assistant turn with its own end-of-turn marker.
        messages = build_messages(tokenizer, question, history, grounding)
        full = render(tokenizer, [*messages, {"role": "assistant", "content": answer}], add_generation_prompt=False)
        if full.startswith(prompt):
            return prompt, full[len(prompt) :]
    return prompt, f"{answer}{end}"
