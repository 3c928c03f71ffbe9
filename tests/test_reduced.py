"""Reduced paper LLM folders: the published numbers with fewer layers, and tokenizers with
the real vocabulary size, special tokens and ids, and beginning-of-sequence behaviour."""
import json

import pytest

from tinyemo.models import reduced, registry

HUB = [name for name, spec in registry.LLMS.items() if spec.family == "hub"]


def test_every_hub_llm_has_its_published_numbers_and_the_registry_agrees():
    assert sorted(HUB) == ["openelm-270m-instruct", "openelm-450m-instruct", "phi-2",
                           "tinyllama-1.1b-chat"]
    for name in HUB:
        config = registry.published_llm(name)["config"]
        width = config.get("model_dim", config.get("hidden_size"))
        assert width == registry.llm_spec(name).embed_dim, name
    with pytest.raises(registry.UnknownModelError, match="no published configuration"):
        registry.published_llm("smollm2-135m-instruct")


@pytest.mark.parametrize("name, layers", [("openelm-450m-instruct", 2), ("phi-2", 1)])
def test_only_the_layer_count_changes(name, layers):
    published = registry.published_llm(name)["config"]
    config = reduced.reduced_config(name, layers)
    changed = {k for k in published if published[k] != config[k]}
    assert changed == {"num_transformer_layers" if "model_dim" in config else "num_hidden_layers"}
    with pytest.raises(ValueError, match="at least one layer"):
        reduced.reduced_config(name, 0)


@pytest.mark.parametrize("name, length, bos, eos, unk, adds_bos", [
    ("openelm-270m-instruct", 32000, ("<s>", 1), ("</s>", 2), ("<unk>", 0), True),
    ("tinyllama-1.1b-chat", 32000, ("<s>", 1), ("</s>", 2), ("<unk>", 0), True),
    ("phi-2", 50295, ("<|endoftext|>", 50256), ("<|endoftext|>", 50256), ("<|endoftext|>", 50256), False),
])
def test_tokenizers_have_the_real_size_specials_and_bos(name, length, bos, eos, unk, adds_bos):
    tokenizer = reduced.reduced_tokenizer(name)
    assert len(tokenizer) == length
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == bos
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == eos
    assert (tokenizer.unk_token, tokenizer.unk_token_id) == unk
    text = "Ünïcode 🙂 <image>  two spaces\tand a tab"
    ids = tokenizer(text)["input_ids"]
    assert (ids[0] == bos[1]) is adds_bos
    assert tokenizer(text, add_special_tokens=False)["input_ids"][0] != bos[1]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_phis_vocabulary_is_smaller_than_its_embedding_table():
    assert registry.published_llm("phi-2")["config"]["vocab_size"] == 51200
    tokenizer = reduced.reduced_tokenizer("phi-2")
    assert tokenizer.convert_tokens_to_ids(" " * 31) == 50257  # the whitespace runs follow
    assert tokenizer(" " * 4)["input_ids"] == [tokenizer.convert_tokens_to_ids(" " * 4)]


def test_tinyllama_keeps_its_chat_template_the_others_have_none():
    chat = reduced.reduced_tokenizer("tinyllama-1.1b-chat")
    prompt = chat.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                      add_generation_prompt=True)
    assert prompt == "<|user|>\nhi</s>\n<|assistant|>\n"
    assert not reduced.reduced_tokenizer("openelm-270m-instruct").chat_template
    assert not reduced.reduced_tokenizer("phi-2").chat_template


def test_a_written_folder_is_complete_and_in_the_published_dtype(tmp_path):
    folder = reduced.write_reduced_llm("tinyllama-1.1b-chat", tmp_path / "tl", layers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tl"]  # no partial folder left
    config = json.loads((folder / "config.json").read_text())
    assert config["num_hidden_layers"] == 1 and config["hidden_size"] == 2048
    assert config["dtype"] == "bfloat16"
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        embedding = weights.get_tensor("model.embed_tokens.weight")
    assert tuple(embedding.shape) == (32000, 2048) and str(embedding.dtype) == "torch.bfloat16"
