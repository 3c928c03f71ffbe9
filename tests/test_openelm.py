"""OpenELM as the project's own model code: Apple's configuration arithmetic, Apple's
parameter names, and the properties the MM-LLM relies on, at the real widths with 2 layers."""
import json

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors.torch import load_file, save_file

from tinyemo.mmllm.model import TinyLlava
from tinyemo.mmllm.train import enable_gradient_checkpointing
from tinyemo.models import llm, llm_checks, openelm, reduced, registry
from tinyemo.models.strict_weights import CheckpointMismatchError, load_strict, model_tensors

OPENELM = "openelm-270m-instruct"
# Published per-layer values: config.json of apple/OpenELM-270M-Instruct (ffn_multipliers,
# num_query_heads, num_kv_heads) and the feed-forward widths that Apple's make_divisible gives
# (as listed by OpenELM converters for 270M and 450M).
PUBLISHED = {
    "openelm-270m-instruct": {
        "ffn_multipliers": [0.5, 0.73, 0.97, 1.2, 1.43, 1.67, 1.9, 2.13, 2.37, 2.6, 2.83, 3.07,
                            3.3, 3.53, 3.77, 4.0],
        "num_query_heads": [12] * 5 + [16] * 7 + [20] * 4,
        "num_kv_heads": [3] * 5 + [4] * 7 + [5] * 4,
        "ffn_dims": [768, 1024, 1280, 1536, 1792, 2048, 2560, 2816, 3072, 3328, 3584, 3840,
                     4352, 4608, 4864, 5120],
    },
    "openelm-450m-instruct": {
        "num_query_heads": [12] * 3 + [16] * 7 + [20] * 6 + [24] * 4,
        "num_kv_heads": [3] * 3 + [4] * 7 + [5] * 6 + [6] * 4,
        "ffn_dims": [768, 1024, 1280, 1536, 1792, 2304, 2560, 2816, 3072, 3328, 3584, 3840,
                     4096, 4352, 4608, 5120, 5376, 5632, 5888, 6144],
    },
}


def config_of(settings: dict) -> openelm.OpenELMConfig:
    return openelm.OpenELMConfig(**{k: v for k, v in settings.items() if k != "model_type"})


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_the_derived_per_layer_widths_are_the_published_ones(name):
    config = config_of(registry.published_llm(name)["config"])
    expected = PUBLISHED[name]
    assert config.num_query_heads == expected["num_query_heads"]
    assert config.num_kv_heads == expected["num_kv_heads"]
    assert config.ffn_dims() == expected["ffn_dims"]
    if "ffn_multipliers" in expected:
        assert config.ffn_multipliers == expected["ffn_multipliers"]


def test_the_hubs_config_json_loads_and_must_agree_with_itself():
    published = registry.published_llm(OPENELM)["config"]
    hub = {**published, **{k: PUBLISHED[OPENELM][k] for k in
                           ("ffn_multipliers", "num_query_heads", "num_kv_heads")},
           "auto_map": {"AutoModelForCausalLM": "modeling_openelm.OpenELMForCausalLM"},
           "torch_dtype": "float32", "transformers_version": "4.39.3"}
    hub.pop("model_type")
    config = openelm.OpenELMConfig(**hub)
    assert config.ffn_dims() == PUBLISHED[OPENELM]["ffn_dims"]
    assert not hasattr(config, "auto_map")  # the pointer to Apple's code is dropped
    with pytest.raises(ValueError, match="num_kv_heads .* disagrees"):
        openelm.OpenELMConfig(**{**hub, "num_kv_heads": [4] * 16})
    with pytest.raises(StrictDataclassError, match="not implemented"):
        openelm.OpenELMConfig(**{**hub, "share_input_output_layers": False})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return reduced.write_reduced_llm(OPENELM, tmp_path_factory.mktemp("openelm") / OPENELM, layers=2)


@pytest.fixture(scope="module")
def loaded(folder):
    return llm.load_llm(folder)


def test_parameters_have_apples_names_and_the_real_widths(loaded):
    model, _ = loaded
    shapes = {name: tuple(t.shape) for name, t in model_tensors(model).items()}
    layer = ["attn_norm.weight", "attn.qkv_proj.weight", "attn.q_norm.weight", "attn.k_norm.weight",
             "attn.out_proj.weight", "ffn_norm.weight", "ffn.proj_1.weight", "ffn.proj_2.weight"]
    assert set(shapes) == {"transformer.token_embeddings.weight", "transformer.norm.weight"} | {
        f"transformer.layers.{i}.{part}" for i in range(2) for part in layer}
    assert shapes["transformer.token_embeddings.weight"] == (32000, 1280)
    # 2 layers keep the narrowest and the widest: 12 query / 3 kv heads and 768 wide, 20 / 5, 5120
    assert shapes["transformer.layers.0.attn.qkv_proj.weight"] == ((12 + 3 + 3) * 64, 1280)
    assert shapes["transformer.layers.0.attn.out_proj.weight"] == (1280, 12 * 64)
    assert shapes["transformer.layers.1.attn.qkv_proj.weight"] == ((20 + 5 + 5) * 64, 1280)
    assert shapes["transformer.layers.1.ffn.proj_1.weight"] == (2 * 5120, 1280)
    assert shapes["transformer.layers.0.attn.q_norm.weight"] == (64,)
    assert list(model.buffers()) == []  # nothing a loader could leave unset


def test_the_head_is_the_embedding_table(loaded):
    model, tokenizer = loaded
    assert model.get_output_embeddings() is None
    ids = llm_checks.prompt_ids(tokenizer)
    hidden = model.transformer(ids).last_hidden_state
    logits = model(ids).logits
    assert torch.allclose(logits, hidden @ model.get_input_embeddings().weight.T, atol=1e-5)
    mm = TinyLlava(model, patch_dim=16, n_patches=4)
    assert torch.allclose(mm.lm_head(hidden), logits, atol=1e-5)


def test_causal_cache_embeds_and_left_padding(loaded):
    model, tokenizer = loaded
    ids, pad = llm_checks.prompt_ids(tokenizer), tokenizer.pad_token_id
    assert ids[0, 0] == 1  # Llama-2's <s> in front
    assert llm_checks.causal(model, ids)["before"] == 0.0
    tokens = llm_checks.embeds_like_ids(model, ids, pad)["tokens"]
    assert llm_checks.cache_like_no_cache(model, ids, pad)["largest_logit_gap"] <= llm_checks.TOLERANCE
    assert llm_checks.left_padding(model, ids, pad)["tokens"] == tokens


def test_the_checks_catch_a_model_that_sees_the_future_or_the_padding(loaded, monkeypatch):
    model, tokenizer = loaded
    ids = llm_checks.prompt_ids(tokenizer)
    real = openelm.attention_mask_4d
    monkeypatch.setattr(openelm, "attention_mask_4d", lambda mask, b, q, past, device: torch.ones(
        b, 1, q, past + q, dtype=torch.bool))
    with pytest.raises(llm_checks.LLMCheckFailed, match="sees the future"):
        llm_checks.causal(model, ids)
    monkeypatch.setattr(openelm, "attention_mask_4d",
                        lambda mask, b, q, past, device: real(None, b, q, past, device))
    with pytest.raises(llm_checks.LLMCheckFailed, match="left-padded"):
        llm_checks.left_padding(model, ids, tokenizer.pad_token_id)


def test_a_saved_model_loads_back_with_the_same_logits(loaded, tmp_path):
    model, tokenizer = loaded
    assert llm_checks.round_trip(model, tokenizer, tmp_path / "again")["tensors"] == 18
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert saved["model_type"] == "openelm" and "auto_map" not in saved


def test_gradient_checkpointing_gives_the_same_gradients(loaded):
    model, tokenizer = loaded
    ids = llm_checks.prompt_ids(tokenizer)

    def gradient():
        model.zero_grad()
        model(ids, labels=ids, use_cache=False).loss.backward()
        return model.transformer.layers[0].attn.qkv_proj.weight.grad.clone()

    model.train()
    try:
        plain = gradient()
        enable_gradient_checkpointing(model)  # as training does
        assert model.transformer.layers[0].gradient_checkpointing
        assert torch.allclose(gradient(), plain, atol=1e-6) and plain.abs().sum() > 0
    finally:
        model.activation_checkpointing_disable()
        model.zero_grad(set_to_none=True)
        model.eval()


def test_lora_all_linear_wraps_every_projection_and_not_the_embeddings(folder):
    from tinyemo.mmllm import artifact

    model, _ = llm.load_llm(folder)
    mm = TinyLlava(model, patch_dim=16, n_patches=4)
    artifact.add_lora(mm, r=4, alpha=8, dropout=0.0, targets="all-linear")
    wrapped = {name.split(".")[-1] for name, module in mm.llm.named_modules() if hasattr(module, "lora_A")}
    assert wrapped == {"qkv_proj", "out_proj", "proj_1", "proj_2"}
    assert not any("token_embeddings.lora" in name for name, _ in mm.llm.named_parameters())


def test_a_model_built_on_meta_and_filled_by_the_strict_load_is_the_model(folder, loaded):
    model, tokenizer = loaded
    config = config_of(reduced.reduced_config(OPENELM, 2))
    with torch.device("meta"):
        empty = openelm.OpenELMForCausalLM(config)
    empty = empty.to_empty(device="cpu")
    load_strict(empty, folder)
    ids = llm_checks.prompt_ids(tokenizer)
    assert torch.equal(empty.eval()(ids).logits, model(ids).logits)


def _rewrite(folder, tmp_path, change):
    """A copy of the checkpoint in `folder` with its tensors changed by `change`."""
    import shutil

    copy = tmp_path / "changed"
    shutil.copytree(folder, copy)
    tensors = load_file(copy / "model.safetensors")
    change(tensors)
    save_file(tensors, copy / "model.safetensors")
    return copy


@pytest.mark.parametrize("change, named", [
    (lambda t: t.pop("transformer.layers.1.attn.k_norm.weight"), "missing transformer.layers.1.attn.k_norm.weight"),
    (lambda t: t.update({"lm_head.weight": t["transformer.token_embeddings.weight"].clone()}),
     "not in the model lm_head.weight"),
    (lambda t: t.update({"transformer.layers.0.ffn.proj_2.weight": torch.zeros(1280, 1024)}),
     r"transformer.layers.0.ffn.proj_2.weight in .*model.safetensors has shape \(1280, 1024\)"),
], ids=["missing", "extra", "wrong-shape"])
def test_a_checkpoint_that_does_not_fit_is_refused_naming_tensor_and_file(folder, tmp_path, change, named):
    changed = _rewrite(folder, tmp_path, change)
    with pytest.raises(CheckpointMismatchError, match=named) as err:
        llm.load_llm(changed)
    assert "model.safetensors" in str(err.value)
