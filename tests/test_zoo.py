"""Law: every bundled model's parameter count equals the published count exactly."""

import pytest

from llmsim.config.loader import list_bundled, load_model

# Hugging Face counts: sum(p.numel() for p in AutoModelForCausalLM/Seq2Seq.from_pretrained(...).parameters())
HF_COUNTS = {
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    "opt-125m": 125_239_296,
    "opt-350m": 331_196_416,
    "opt-1.3b": 1_315_758_080,
    "tinyllama-1.1b": 1_100_048_384,
    "flan-t5-small": 76_961_152,
    "flan-t5-base": 247_577_856,
    # transformers 5.24: AutoModelForCausalLM.from_config(cfg) on the meta device, sum of numel(), with each
    # checkpoint's config.json values (below in HF_CONFIGS); equal to the counts the model cards publish
    "llama-2-7b": 6_738_415_616,
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "llama-68m": 68_030_208,
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "qwen2-7b": 7_615_616_512,
    "phi-3-mini": 3_821_079_552,
    "opt-6.7b": 6_658_473_984,
    "olmoe-1b-7b": 6_919_161_856,
}


def gpt_hand_count(d: int, layers: int, vocab: int = 50257, ctx: int = 2048) -> int:
    """GPT-2 architecture by hand: embeddings + L x (2 LN + QKV + proj + 2 MLP, with biases) + final LN."""
    per_layer = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d)
    return vocab * d + ctx * d + layers * per_layer + 2 * d


GPT3 = {"gpt3-small": (768, 12), "gpt3-medium": (1024, 24), "gpt3-large": (1536, 24), "gpt3-xl": (2048, 24)}
GPT3_NOMINAL = {"gpt3-small": 125e6, "gpt3-medium": 350e6, "gpt3-large": 760e6, "gpt3-xl": 1.3e9}


@pytest.mark.parametrize("name", sorted(HF_COUNTS))
def test_parameter_count_equals_hugging_face(name):
    assert load_model(name).parameter_count() == HF_COUNTS[name]


@pytest.mark.parametrize("name", sorted(GPT3))
def test_gpt3_parameter_count_equals_hand_count_and_paper_size(name):
    count = load_model(name).parameter_count()
    assert count == gpt_hand_count(*GPT3[name])
    assert abs(count / GPT3_NOMINAL[name] - 1) < 0.03  # GPT-3 paper Table 2.1 rounds to these


def test_every_bundled_model_is_covered():
    assert set(list_bundled("workloads")) == set(HF_COUNTS) | set(GPT3)
