"""A tiny GPT-2 built from a config, with a small word-level tokenizer trained on the spot.

Real code paths (from_pretrained, PEFT, generate, the Trainer) on a model that loads in
milliseconds. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

CORPUS = """
asthma is a long term condition that affects the airways and can cause wheezing coughing and breathlessness
see a doctor if your symptoms get worse or you need your reliever inhaler more often
high blood pressure often has no symptoms so have it checked regularly
drink plenty of water rest and take simple pain relief if you need it
a headache is usually not serious but get help if it is sudden and severe
### Instructions ### Question ### Answer
what are the symptoms of asthma how do i lower my blood pressure what helps a headache
you are medbot a careful health information assistant give general educational information in plain language
do not diagnose do not prescribe and do not give medicine doses suggest seeing a doctor or pharmacist when it would help
and tell the person to call emergency services for anything that sounds urgent answer in a short paragraph
reference information you may use
"""


def build_tiny_gpt2(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer GPT-2 and its tokenizer to ``folder`` and return the folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    trainer = trainers.WordLevelTrainer(special_tokens=["<unk>", "<|endoftext|>"])
    tokenizer.train_from_iterator(CORPUS.split("\n") * 3, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    fast.save_pretrained(folder)

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(fast),
        n_positions=512,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=fast.eos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def load_engine(folder: Path, cache: Path, adapter: object = None, **options: object) -> object:
    """The local engine on a tiny model, built as the manager builds it (``EngineConfig``);
    fp32 and unquantised unless ``options`` say otherwise."""
    from inference.engine import EngineConfig, LoraEngine

    options = {"dtype": "float32", "quantize": "none", **options}
    return LoraEngine.load(EngineConfig(base_model=str(folder), cache_root=cache, **options), adapter)


def make_adapter(base: Path, folder: Path, seed: int = 1) -> Path:
    """A LoRA adapter for the tiny GPT-2 on c_attn/c_proj with non-zero weights, saved to ``folder``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from inference.registry import lora_targets

    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=lora_targets("gpt2"), fan_in_fan_out=True, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, config)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # a trained adapter is never all zeros
    peft_model.save_pretrained(folder)
    return folder
