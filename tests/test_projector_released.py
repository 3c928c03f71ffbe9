"""The released projectors' row group of Table VIII: scored from a Hugging Face cache as upstream
scores them, beside the paper's numbers; skipped with the reason where nothing is reachable."""
import pytest
import torch
from huggingface_hub import constants

from tests.upstream_helpers import (
    byte_tokenizer, feature_folder, hub_file, mark_missing, upstream_anchors, upstream_predictions,
    write_checkpoint,
)
from tinyemo.emotion6 import read_feature_folder
from tinyemo.feature_store import FeatureSet
from tinyemo.models import registry
from tinyemo.projector import anchors, paper_table, released, upstream, upstream_checkpoint
from tinyemo.projector.paper_numbers import PUBLISHED, published_for
from tinyemo.taxonomy import EKMAN6, PARROTT25

COMMIT = "c0ffee" + "0" * 34  # the commit of the repositories that follow main


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty local Hugging Face cache (the hub itself is off: HF_HUB_OFFLINE=1)."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    yield tmp_path / "hub"
    upstream.llm_encoder.cache_clear()
    anchors.llm_table.cache_clear()


def cache_llm(cache, name, tokenizer):
    """The files an online run of the embedding loader leaves for a registry LLM: its tokenizer, the
    one weights file holding the input embeddings (no index: a single-file checkpoint)."""
    spec = registry.llm_spec(name)
    commit = spec.revision or COMMIT
    key = "transformer.token_embeddings.weight" if name.startswith("openelm") else "model.embed_tokens.weight"
    table = torch.randn(len(tokenizer), spec.embed_dim, generator=torch.Generator().manual_seed(spec.embed_dim))
    from safetensors.torch import save_file

    save_file({key: table}, hub_file(cache, spec.source, commit, "model.safetensors", main=not spec.revision))
    mark_missing(cache, spec.source, commit, "model.safetensors.index.json")
    tokenizer_repo = spec.tokenizer or spec.source
    tokenizer_commit = spec.tokenizer_revision if spec.tokenizer else commit
    folder = hub_file(cache, tokenizer_repo, tokenizer_commit, "tokenizer.json").parent
    tokenizer.save_pretrained(folder)
    from transformers import AutoConfig  # AutoTokenizer reads the repository's config.json too

    AutoConfig.for_model("phi" if name == "phi-2" else "llama", hidden_size=8,
                         num_attention_heads=1).save_pretrained(folder)
    return table


def cache_everything(cache):
    """The four released checkpoints and their LLMs' tables: {repo: (module, tokenizer, table)}."""
    cached = {}
    for repo, llm in upstream_checkpoint.RELEASED.items():
        tokenizer = byte_tokenizer(adds_bos=llm != "phi-2")  # Phi-2's tokenizer adds no BOS
        table = cache_llm(cache, llm, tokenizer)
        width = registry.llm_spec(llm).embed_dim
        module = write_checkpoint(hub_file(cache, repo, COMMIT, upstream_checkpoint.default_file(repo), main=True), width,
                                  seed=width)
        cached[repo] = (module, tokenizer, table)
    return cached


def columns(tmp_path):
    feature_folder(tmp_path / "e6", n_per_class=6, seed=1)
    emotion6 = read_feature_folder(tmp_path / "e6")
    folders = ["cheerfullness", "irritabilty", "rage"]
    feature_folder(tmp_path / "webemo", n_per_class=5, labels=folders, seed=2)
    webemo = read_feature_folder(tmp_path / "webemo", PARROTT25, upstream.folder_labels("webemo"))
    other = FeatureSet(["a", "b"], torch.randn(2, 1280), ["awe", "fear"], ("awe", "fear"), meta={"vision_tower": "x"})
    return {"emotion6": emotion6, "webemo": webemo, "emoscenes": other}


def test_every_released_projector_is_scored_as_upstream_scores_it(hub_cache, tmp_path):
    cached = cache_everything(hub_cache)
    tests = columns(tmp_path)
    result = released.score_released(tests, {"emotion6": "val", "webemo": "test", "emoscenes": "test"})
    assert result["skipped"] == {} and list(result["skipped_columns"]) == ["emoscenes"]
    assert list(result["rows"]) == list(upstream_checkpoint.RELEASED)
    spelled = {"cheerfulness": "cheerfullness", "irritability": "irritabilty"}
    for repo, (module, tokenizer, table) in cached.items():
        row = result["rows"][repo]
        model, paper = published_for(upstream_checkpoint.RELEASED[repo])
        assert row["paper_model"] == model and row["commit"] == COMMIT
        for dataset, texts in (("emotion6", {}), ("webemo", spelled)):
            features = tests[dataset]
            _, top1 = upstream_predictions(module, tokenizer, table, features.pooled, features.labels, texts)
            cell = row["cells"][dataset]
            assert cell["top1"] == pytest.approx(top1) and cell["n"] == len(features)
            assert cell["paper_top1"] == paper[dataset]
            assert cell["delta"] == pytest.approx(100 * top1 - paper[dataset])
        ours = upstream.open_released(repo).artifact("emotion6").anchors
        torch.testing.assert_close(ours, upstream_anchors(tokenizer, table, EKMAN6), rtol=0, atol=1e-6)
        assert row["cells"]["emotion6"]["shares_images_with_training"]
        assert row["cells"]["webemo"]["in_domain"] and not row["cells"]["emotion6"]["in_domain"]
    text = released.render_markdown(result)
    assert "## The paper's released projectors" in text and "TinyEmo-3.21B" in text
    phi2 = result["rows"]["ggcristian/TinyEmo-CLIP-Phi-2"]["cells"]["emotion6"]
    assert f"(paper {PUBLISHED['TinyEmo-3.21B']['top1']['emotion6']:.2f}, Δ {phi2['delta']:+.2f})" in text
    assert "Emotion6 6 [val split]" in text and "not scored by the released projectors: emoscenes" in text


def test_offline_with_nothing_cached_the_group_is_skipped_with_the_reason(hub_cache, tmp_path):
    tests = columns(tmp_path)
    result = released.score_released(tests, {name: "test" for name in tests})
    assert result["rows"] == {} and list(result["skipped"]) == list(upstream_checkpoint.RELEASED)
    assert all("HF_HUB_OFFLINE" in why and "hf download" in why for why in result["skipped"].values())
    assert "- not scored: ggcristian/TinyEmo-CLIP-Phi-2: cannot fetch" in released.render_markdown(result)
    none = released.score_released({"emoscenes": tests["emoscenes"]}, {"emoscenes": "test"})
    assert set(none["skipped"].values()) == {"no column has clip-vit-l-14 features"}


def test_the_paper_table_carries_the_released_group(hub_cache):
    from tests.test_paper_table import clustered_sets, params

    metrics = paper_table.compute(params(train_datasets=["emotionroi"], eval_datasets=["emotionroi", "fi"],
                                         recipes={"paper": {"epochs": 1}}),
                                  base_llm="tiny-random-llama", source=paper_table.FeatureSource.from_sets(clustered_sets()))
    assert set(metrics["released"]["skipped"]) == set(upstream_checkpoint.RELEASED)
    text = paper_table.render_markdown(metrics)
    assert text.index("## The paper's released projectors") < text.index("The paper's published numbers")
