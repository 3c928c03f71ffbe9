"""The embedding-only loader reads the same rows as a full model load, and only one shard."""
import json

import pytest
import torch

from tinyemo.models import embedding_table, registry
from tinyemo.models.embedding_table import EmbeddingTableError, read_embedding_table


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False)
    return LlamaForCausalLM(config)


def tiny_phi():
    from transformers import PhiConfig, PhiForCausalLM

    config = PhiConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, tie_word_embeddings=False)
    return PhiForCausalLM(config)


def saved(model, folder, shard="20KB"):
    torch.manual_seed(0)
    model.save_pretrained(folder, max_shard_size=shard)
    return folder


def full_load_rows(folder):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.get_input_embeddings().weight.detach()


@pytest.mark.parametrize("build", [tiny_llama, tiny_phi], ids=["llama", "phi"])
def test_sharded_checkpoint_reads_the_rows_of_a_full_load(build, tmp_path):
    folder = saved(build(), tmp_path / "model")
    index = json.loads((folder / embedding_table.INDEX_FILE).read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) > 2  # the index path is exercised: the table is in one shard of many
    table = read_embedding_table("local/tiny", folder=folder)
    assert table.key == "model.embed_tokens.weight" and table.filename in shards
    assert torch.equal(table.weight, full_load_rows(folder))


def test_hub_download_fetches_the_index_and_one_shard_at_the_pinned_revision(tmp_path, monkeypatch):
    folder = saved(tiny_llama(), tmp_path / "model")
    calls = []

    def fake_download(repo, filename, revision=None):
        calls.append((repo, filename, revision))
        return str(folder / filename)

    monkeypatch.setattr(embedding_table, "hf_hub_download", fake_download)
    table = read_embedding_table("org/tiny", "0123456789abcdef0123456789abcdef01234567")
    assert [name for _, name, _ in calls] == [embedding_table.INDEX_FILE, table.filename]
    assert {revision for _, _, revision in calls} == {"0123456789abcdef0123456789abcdef01234567"}
    assert torch.equal(table.weight, full_load_rows(folder))


def test_single_file_checkpoint_and_missing_key(tmp_path):
    folder = saved(tiny_llama(), tmp_path / "single", shard="100MB")
    assert not (folder / embedding_table.INDEX_FILE).exists()
    table = read_embedding_table("local/tiny", folder=folder)
    assert table.filename == embedding_table.SINGLE_FILE
    assert torch.equal(table.weight, full_load_rows(folder))

    from safetensors.torch import save_file

    odd = tmp_path / "odd"
    odd.mkdir()
    save_file({"encoder.word_embeddings": torch.zeros(4, 2)}, odd / embedding_table.SINGLE_FILE)
    with pytest.raises(EmbeddingTableError, match="encoder.word_embeddings"):
        read_embedding_table("local/odd", folder=odd)
    with pytest.raises(EmbeddingTableError, match="neither"):
        read_embedding_table("local/empty", folder=tmp_path)


def test_hub_llms_are_pinned_where_a_commit_is_known():
    for name in ("tinyllama-1.1b-chat", "phi-2"):
        assert len(registry.llm_spec(name).revision) == 40
    for name in ("openelm-270m-instruct", "openelm-450m-instruct"):
        assert len(registry.llm_spec(name).tokenizer_revision) == 40


def test_llm_load_embedding_table_reads_hub_models_through_the_embedding_loader(tmp_path, monkeypatch):
    """`tinyemo.models.llm.load_embedding_table` on a hub-family spec: the tokenizer and the table
    come from the pinned files, and no model is built."""
    from tinyemo.models import llm

    folder = saved(tiny_llama(), tmp_path / "model")
    llm.tiny_tokenizer().save_pretrained(folder)
    spec = registry.LLMSpec("tiny-hub", "hub", source=str(folder), embed_dim=32, revision="f" * 40)
    monkeypatch.setitem(registry.LLMS, "tiny-hub", spec)
    fetched = []
    monkeypatch.setattr(embedding_table, "hf_hub_download",
                        lambda repo, name, revision=None: fetched.append(name) or str(folder / name))
    monkeypatch.setattr(llm, "load_llm", lambda *a, **k: pytest.fail("the whole model was loaded"))
    tokenizer, weight = llm.load_embedding_table("tiny-hub")
    assert torch.equal(weight, full_load_rows(folder))
    assert tokenizer("joy")["input_ids"] == llm.tiny_tokenizer()("joy")["input_ids"]
    assert fetched[0] == embedding_table.INDEX_FILE and len(fetched) == 2

    wrong = registry.LLMSpec("tiny-hub", "hub", source=str(folder), embed_dim=99)
    monkeypatch.setitem(registry.LLMS, "tiny-hub", wrong)
    with pytest.raises(EmbeddingTableError, match="the registry says width 99"):
        llm.load_embedding_table("tiny-hub")
