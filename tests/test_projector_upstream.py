"""The paper's released projectors (`--projector upstream:REF`): upstream's file layout loads
strictly at every paper width, anchors and predictions match upstream's formulas computed here,
and every bad input is a clear error (exit 2)."""
import json

import pytest
import torch
from torch.nn import functional as F

from tests.upstream_helpers import (
    PAPER_WIDTHS, byte_tokenizer, embedding_folder, feature_folder, hub_file, upstream_anchors,
    upstream_predictions, write_checkpoint,
)
from tinyemo.cli import main
from tinyemo.projector import upstream, upstream_checkpoint
from tinyemo.projector.paper_numbers import PUBLISHED
from tinyemo.taxonomy import EKMAN6, MIKELS8, PARROTT25


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("width", PAPER_WIDTHS)
def test_a_checkpoint_in_upstreams_layout_loads_and_scores_at_each_paper_width(width, tmp_path, capsys):
    module = write_checkpoint(tmp_path / "proj.bin", width, seed=width)
    tokenizer = byte_tokenizer(adds_bos=False)
    table = embedding_folder(tmp_path / "llm", width, tokenizer)
    features, labels = feature_folder(tmp_path / "feats", n_per_class=8)
    loaded = upstream_checkpoint.load_checkpoint(tmp_path / "proj.bin")
    assert not loaded.training and (loaded.in_dim, loaded.out_dim) == (768, width)
    for key, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()["mlp." + key.removeprefix("model.")], value), key
    _, top1 = upstream_predictions(module, tokenizer, table, features, labels)
    code, out, err = run(capsys, "evaluate", "--projector", f"upstream:{tmp_path / 'proj.bin'}",
                         "--llm", tmp_path / "llm", "--features-dir", tmp_path / "feats", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == len(labels) and result["top1"] == pytest.approx(top1)
    assert result["llm"] == str(tmp_path / "llm") and result["template"] == "bare"
    assert result["paper"] is None  # a file of unknown origin: no published number to compare


def tiny_llm(folder, adds_bos):
    """A tiny random transformers model saved locally: Llama-like (adds <s>) or Phi-2-like."""
    from transformers import LlamaConfig, LlamaForCausalLM, PhiConfig, PhiForCausalLM

    tokenizer = byte_tokenizer(adds_bos)
    shape = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                 num_attention_heads=4, tie_word_embeddings=False)
    torch.manual_seed(1)
    model = LlamaForCausalLM(LlamaConfig(**shape)) if adds_bos else PhiForCausalLM(PhiConfig(**shape))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return tokenizer


def full_model_table(folder):
    """The input embeddings as upstream read them: the whole model loaded."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).get_input_embeddings().weight.detach()


@pytest.mark.parametrize("adds_bos", [True, False], ids=["llama-like", "phi-like"])
def test_a_tiny_llm_saved_locally_gives_upstreams_anchors_and_predictions(adds_bos, tmp_path, capsys):
    tokenizer = tiny_llm(tmp_path / "llm", adds_bos)
    module = write_checkpoint(tmp_path / "proj.bin", 32)
    features, labels = feature_folder(tmp_path / "feats", n_per_class=20, seed=3)
    table = full_model_table(tmp_path / "llm")
    released = upstream.open_released(f"upstream:{tmp_path / 'proj.bin'}", str(tmp_path / "llm"))
    artifact = released.artifact("emotion6")
    torch.testing.assert_close(artifact.anchors, upstream_anchors(tokenizer, table, EKMAN6), rtol=0, atol=1e-6)
    assert (tokenizer("joy")["input_ids"][0] == tokenizer.bos_token_id) is adds_bos

    from tinyemo.emotion6 import read_feature_folder

    evaluation, _ = upstream.evaluate_features(released, "emotion6", read_feature_folder(tmp_path / "feats"))
    predicted, top1 = upstream_predictions(module, tokenizer, table, features, labels)
    assert [EKMAN6[i] for i in evaluation.predicted] == predicted
    assert 0.0 < top1 < 1.0  # the comparison is not between two trivial answers
    code, out, err = run(capsys, "evaluate", "--projector", f"upstream:{tmp_path / 'proj.bin'}",
                         "--llm", tmp_path / "llm", "--features-dir", tmp_path / "feats", "--json")
    assert code == 0, err
    assert json.loads(out)["top1"] == pytest.approx(top1)


def test_openelm_folders_are_read_by_their_architectures_key(tmp_path):
    from tinyemo.models.embedding_table import load_folder_embedding_table

    tokenizer = byte_tokenizer(adds_bos=True)
    table = embedding_folder(tmp_path / "openelm", 48, tokenizer, model_type="openelm",
                             key="transformer.token_embeddings.weight")
    read_tokenizer, weight = load_folder_embedding_table(tmp_path / "openelm")
    assert torch.equal(weight, table) and read_tokenizer("joy")["input_ids"] == tokenizer("joy")["input_ids"]


def test_only_the_labels_present_compete_and_webemo_keeps_its_folder_spellings(tmp_path, capsys):
    tokenizer = byte_tokenizer(adds_bos=True)
    table = embedding_folder(tmp_path / "llm", 40, tokenizer, model_type="llama")
    module = write_checkpoint(tmp_path / "proj.bin", 40)
    folders = ["cheerfullness", "irritabilty", "rage", "zest"]  # upstream's WEBEmo folders, as shipped
    features, names = feature_folder(tmp_path / "webemo", n_per_class=6, labels=folders)
    texts = {"cheerfulness": "cheerfullness", "irritability": "irritabilty"}
    labels = [{v: k for k, v in texts.items()}.get(name, name) for name in names]
    predicted, top1 = upstream_predictions(module, tokenizer, table, features, labels, texts)
    code, out, err = run(capsys, "evaluate", "--projector", f"upstream:{tmp_path / 'proj.bin'}", "--llm",
                         tmp_path / "llm", "--dataset", "webemo", "--features-dir", tmp_path / "webemo", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["top1"] == pytest.approx(top1) and list(result["per_class"]) == sorted(set(labels))
    assert result["label_texts"] == {"cheerfulness": "cheerfullness", "irritability": "irritabilty",
                                     "rage": "rage", "zest": "zest"}
    assert upstream.label_texts("webemo", PARROTT25).count("cheerfullness") == 1


def test_abstract_is_anchored_on_the_papers_template(tmp_path):
    tokenizer = byte_tokenizer(adds_bos=True)
    table = embedding_folder(tmp_path / "llm", 40, tokenizer, model_type="llama")
    write_checkpoint(tmp_path / "proj.bin", 40)
    released = upstream.open_released(f"upstream:{tmp_path / 'proj.bin'}", str(tmp_path / "llm"))
    artifact = released.artifact("abstract")
    expected = upstream_anchors(tokenizer, table, [f"a scene evoking {e} to viewers" for e in MIKELS8])
    torch.testing.assert_close(artifact.anchors, expected, rtol=0, atol=1e-6)
    assert artifact.config["template"] == "scene-evoking-viewers"
    bare = released.artifact("abstract", template="bare").anchors
    torch.testing.assert_close(bare, upstream_anchors(tokenizer, table, MIKELS8), rtol=0, atol=1e-6)


def test_classify_with_a_released_checkpoint_ranks_every_label_of_the_dataset(tmp_path, capsys):
    tokenizer = byte_tokenizer(adds_bos=False)
    table = embedding_folder(tmp_path / "llm", 40, tokenizer)
    module = write_checkpoint(tmp_path / "proj.bin", 40)
    vector = 19 * F.normalize(torch.randn(768, generator=torch.Generator().manual_seed(5)), dim=0)
    torch.save(vector.half(), tmp_path / "one.pt")
    with torch.no_grad():
        projected = F.normalize(module(vector.half().float().unsqueeze(0)), dim=1)
    scores = (projected @ upstream_anchors(tokenizer, table, EKMAN6).T)[0]
    code, out, err = run(capsys, "classify", tmp_path / "one.pt", "--projector", f"upstream:{tmp_path / 'proj.bin'}",
                         "--llm", tmp_path / "llm", "--top-k", "6", "--json")
    assert code == 0, err
    top = json.loads(out)["results"][0]["top"]
    assert [t["label"] for t in top] == [EKMAN6[i] for i in scores.argsort(descending=True)]
    assert [t["score"] for t in top] == pytest.approx(scores.sort(descending=True).values.tolist(), abs=1e-4)
    assert "anchors of" in err


def test_a_released_file_is_known_by_its_name_and_compared_with_the_paper(tmp_path, capsys):
    write_checkpoint(tmp_path / "TinyEmo-CLIP-Phi-2.bin", 40)
    embedding_folder(tmp_path / "llm", 40, byte_tokenizer(adds_bos=False))
    feature_folder(tmp_path / "feats", n_per_class=4)
    ref = upstream_checkpoint.CheckpointRef.parse(f"upstream:{tmp_path / 'TinyEmo-CLIP-Phi-2.bin'}")
    assert ref.released_llm == "phi-2"
    code, out, err = run(capsys, "evaluate", "--projector", f"upstream:{ref.text}", "--llm", tmp_path / "llm",
                         "--features-dir", tmp_path / "feats", "--json")
    assert code == 0, err
    result = json.loads(out)
    paper = PUBLISHED["TinyEmo-3.21B"]["top1"]["emotion6"]
    assert result["paper"]["model"] == "TinyEmo-3.21B" and result["paper"]["top1"] == paper
    assert result["paper"]["delta"] == pytest.approx(100 * result["top1"] - paper)
    low, high = result["top1_ci95"]
    assert 0 <= low <= result["top1"] <= high <= 1 and result["shares_images_with_training"]
    assert "not a zero-shot score" in err


def test_hub_references_and_a_cached_revision(tmp_path, monkeypatch):
    from huggingface_hub import constants

    parse = upstream_checkpoint.CheckpointRef.parse
    ref = parse("upstream:ggcristian/TinyEmo-CLIP-Phi-2")
    assert (ref.repo, ref.revision, ref.filename, ref.released_llm) == (
        "ggcristian/TinyEmo-CLIP-Phi-2", None, "TinyEmo-CLIP-Phi-2.bin", "phi-2")
    commit = "0123456789abcdef0123456789abcdef01234567"
    ref = parse(f"upstream:org/model@{commit}/weights.bin")
    assert (ref.repo, ref.revision, ref.filename, ref.released_llm) == ("org/model", commit, "weights.bin", None)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    write_checkpoint(hub_file(tmp_path / "hub", "org/model", commit, "weights.bin"), 16)
    path, found = ref.fetch()
    assert found == commit and upstream_checkpoint.load_checkpoint(path).out_dim == 16


def bad_checkpoint(tmp_path, case):
    """A .bin file with one defect; returns (path, llm folder, expected message)."""
    embedding_folder(tmp_path / "llm", 40, byte_tokenizer(adds_bos=False))
    path = tmp_path / "bad.bin"
    state = dict(write_checkpoint(path, 40).state_dict())
    if case == "missing key":
        del state["model.1.running_var"]
        message = "missing keys ['model.1.running_var']"
    elif case == "extra key":
        state["model.5.weight"] = torch.zeros(40)
        message = "unexpected keys ['model.5.weight']"
    elif case == "wrong width":
        state["model.4.weight"] = torch.zeros(40, 41)
        message = "wrong widths {'model.4.weight': [40, 41]}"
    elif case == "non-tensor entry":
        state["model.1.momentum"] = 0.1
        message = "{'model.1.momentum': 'float'} are not tensors"
    elif case == "pickled object":
        state = torch.nn.Linear(768, 40)
        message = "pickled Python objects besides tensors"
    elif case == "not a state dict":
        state = [state["model.0.weight"]]
        message = "holds a list, not a state dict"
    elif case == "llm width":
        state = dict(write_checkpoint(path, 64).state_dict())
        message = f"projects into 64 dimensions, but the input embeddings of {tmp_path / 'llm'} are 40-d"
    torch.save(state, path)
    if case == "not torch":
        path.write_bytes(b"not a checkpoint")
        message = "is not a file written by torch.save"
    return path, message


@pytest.mark.parametrize("case", ["missing key", "extra key", "wrong width", "non-tensor entry", "pickled object",
                                  "not a state dict", "llm width", "not torch"])
def test_a_defective_checkpoint_is_a_clear_error(case, tmp_path, capsys):
    path, message = bad_checkpoint(tmp_path, case)
    feature_folder(tmp_path / "feats", n_per_class=2)
    code, out, err = run(capsys, "evaluate", "--projector", f"upstream:{path}", "--llm", tmp_path / "llm",
                         "--features-dir", tmp_path / "feats")
    assert code == 2 and out == "" and "Traceback" not in err
    assert message in err


def test_a_released_checkpoint_against_another_llm_names_both(tmp_path, capsys):
    write_checkpoint(tmp_path / "TinyEmo-CLIP-OpenELM-270M-Syn.bin", 64)
    embedding_folder(tmp_path / "llm", 40, byte_tokenizer(adds_bos=False))
    feature_folder(tmp_path / "feats", n_per_class=2)
    code, _, err = run(capsys, "evaluate", "--projector", f"upstream:{tmp_path / 'TinyEmo-CLIP-OpenELM-270M-Syn.bin'}",
                       "--llm", tmp_path / "llm", "--features-dir", tmp_path / "feats")
    assert code == 2 and "trained against openelm-270m-instruct" in err and "are 40-d" in err


@pytest.mark.parametrize("argv, message", [
    (["--projector", "upstream:ggcristian/TinyEmo-CLIP-Phi-2"], "not in the local Hugging Face cache"),
    (["--projector", "upstream:missing.bin"], "there is no such file"),
    (["--projector", "upstream:not a repo"], "names neither a hub repository"),
    (["--projector", "upstream:{bin}"], "name the LLM"),
    (["--projector", "upstream:{bin}", "--llm", "gpt-9"], "unknown LLM 'gpt-9'"),
    (["--projector", "upstream:{bin}", "--llm", "{tmp}"], "is not a model folder"),
    (["--projector", "upstream:{bin}", "--llm", "{llm}", "--template", "a-photo"], "unknown template"),
    (["--projector", "upstream:{bin}", "--llm", "{llm}", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--projector", "upstream:{bin}", "--llm", "{llm}", "--dataset", "webemo"], "name the dataset with --dataset"),
    (["--projector", "{tmp}", "--llm", "phi-2"], "apply to --projector upstream:REF only"),
])
def test_bad_upstream_options_are_clear_errors(argv, message, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    write_checkpoint(tmp_path / "proj.bin", 40)
    embedding_folder(tmp_path / "llm", 40, byte_tokenizer(adds_bos=False))
    feature_folder(tmp_path / "feats", n_per_class=2)
    filled = [a.format(bin=tmp_path / "proj.bin", llm=tmp_path / "llm", tmp=tmp_path) for a in argv]
    code, out, err = run(capsys, "evaluate", *filled, "--features-dir", tmp_path / "feats")
    assert code == 2 and out == "" and "Traceback" not in err
    assert message in err


def test_features_of_another_tower_are_refused(tmp_path, capsys):
    write_checkpoint(tmp_path / "proj.bin", 40)
    embedding_folder(tmp_path / "llm", 40, byte_tokenizer(adds_bos=False))
    feature_folder(tmp_path / "feats", n_per_class=2, width=1280)
    code, out, err = run(capsys, "evaluate", "--projector", f"upstream:{tmp_path / 'proj.bin'}", "--llm",
                         tmp_path / "llm", "--features-dir", tmp_path / "feats")
    assert code == 2 and out == "" and "the features have width 1280" in err and "768-d clip-vit-l-14" in err
