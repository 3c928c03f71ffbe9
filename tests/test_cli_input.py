"""`tinyemo classify` and `evaluate` on bad input and on first use: each case a clear
one-line error (exit 2) that names the file and the fix, or a word on stderr about the
projector used and what it was trained on."""
import argparse
import json
import time

import pytest
import torch
from PIL import Image

from tests.image_helpers import huge_png
from tests.test_projector_cli import WIDTH, projector, run  # noqa: F401 (fixture)
from tinyemo.feature_store import FeatureSet, feature_path
from tinyemo.projector.artifact import load_projector, save_projector
from tinyemo.taxonomy import EKMAN6


@pytest.fixture
def labelled(projector):  # noqa: F811
    """The fixture's projector, recorded as trained on EmoScenes (as the pipeline saves it)."""
    directory, features, labels = projector
    artifact = load_projector(directory)
    save_projector(directory, artifact.model, artifact.anchors, artifact.label_names,
                   {k: v for k, v in artifact.config.items() if k not in ("label_names", "model")}
                   | {"dataset": "emoscenes"})
    return directory, features, labels


def write_pt(path, value, **kwargs):
    torch.save(value, path, **kwargs)
    return path.name


@pytest.mark.parametrize("case, message", [
    ("nan", "1 of 2 feature rows hold NaN or infinite values"),
    ("complex", "holds complex numbers"),
    ("text", "is not a tensor file"),
    ("empty", "is not a tensor file"),
    ("pickle", "holds Python objects besides tensors"),
])
def test_a_feature_file_that_is_not_plain_finite_features_is_refused(labelled, capsys, in_tmp, case, message):
    directory, features, _ = labelled
    if case == "nan":
        rows = features[:2].clone()
        rows[1, 3] = float("nan")
        name = write_pt(in_tmp / "f.pt", rows)
    elif case == "complex":
        name = write_pt(in_tmp / "f.pt", torch.randn(WIDTH, dtype=torch.complex64))
    elif case == "text":
        (in_tmp / "f.pt").write_text("0.1 0.2 0.3\n")
        name = "f.pt"
    elif case == "empty":
        (in_tmp / "f.pt").write_bytes(b"")
        name = "f.pt"
    else:
        name = write_pt(in_tmp / "f.pt", {"features": features[0], "args": argparse.Namespace(a=1)})
    code, out, err = run(capsys, "classify", name, "--projector", str(directory))
    assert code == 2 and out == ""
    assert err.startswith(f"tinyemo classify: error: {name}") and message in err, err
    assert "weights_only" not in err and "Traceback" not in err


def test_legacy_torch_save_format_still_loads(labelled, capsys, in_tmp):
    directory, features, _ = labelled
    name = write_pt(in_tmp / "old.pt", features[0], _use_new_zipfile_serialization=False)
    code, out, _ = run(capsys, "classify", name, "--projector", str(directory), "--json")
    assert code == 0 and json.loads(out)["results"][0]["input"] == name


@pytest.mark.parametrize("option", ["--batch-size", "--top-k"])
def test_a_count_below_one_is_a_usage_error_naming_the_option(capsys, option):
    with pytest.raises(SystemExit) as exit_:
        from tinyemo.cli import main

        main(["classify", "x.png", option, "0"])
    assert exit_.value.code == 2
    assert f"argument {option}: must be at least 1, got 0" in capsys.readouterr().err


def test_a_truncated_image_among_several_is_named(labelled, capsys, in_tmp):
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (64, 64), (30, 90, 200)).save(in_tmp / name)
    whole = (in_tmp / "b.png").read_bytes()
    (in_tmp / "b.png").write_bytes(whole[: len(whole) // 2])
    code, out, err = run(capsys, "classify", "a.png", "b.png", "c.png", "--batch-size", "2")
    assert code == 2 and out == ""
    assert "error: b.png is not a readable image" in err and "a.png" not in err.split("error:")[1]


def test_a_decompression_bomb_is_refused_with_its_reason(labelled, capsys, in_tmp):
    huge_png(in_tmp / "huge.png")
    code, _, err = run(capsys, "classify", "huge.png")
    assert code == 2
    assert "huge.png has more pixels than PIL decodes safely" in err and "resize it" in err


def test_classify_names_its_projector_and_warns_that_it_learnt_a_synthetic_world(labelled, capsys, in_tmp):
    directory, features, _ = labelled
    Image.new("RGB", (64, 64), (200, 40, 40)).save(in_tmp / "photo.png")
    code, out, err = run(capsys, "classify", "photo.png", "--json")
    assert code == 0
    assert f"projector {directory.relative_to(in_tmp)}: trained on EmoScenes, the synthetic scenes" in err
    assert "tiny-random-cnn features" in err
    assert "warning:" in err and "--projector models/projector/emotion6" in err
    assert json.loads(out)["trained_on"] == "emoscenes"
    write_pt(in_tmp / "f.pt", features[0])
    code, _, err = run(capsys, "classify", "f.pt", "--projector", str(directory))
    assert code == 0 and "trained on EmoScenes" in err and "warning" not in err  # features: no photo


def test_missing_clip_weights_offline_fail_at_once_naming_the_fix(labelled, capsys, in_tmp, monkeypatch):
    from huggingface_hub import constants

    import tinyemo.models.vision

    directory, _, _ = labelled
    artifact = load_projector(directory)
    save_projector(directory, artifact.model, artifact.anchors, artifact.label_names,
                   {"vision_tower": "clip-vit-l-14", "dataset": "emotion6"})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(in_tmp / "empty-cache"))

    def never(*args, **kwargs):
        raise AssertionError("the tower must not be loaded when its weights are missing")

    monkeypatch.setattr(tinyemo.models.vision, "load_vision_tower", never)
    Image.new("RGB", (64, 64)).save(in_tmp / "photo.png")
    started = time.perf_counter()
    code, _, err = run(capsys, "classify", "photo.png", "--projector", str(directory))
    assert code == 2 and time.perf_counter() - started < 20
    assert "clip-vit-l-14 (open_clip ViT-L-14, 'openai' weights)" in err
    assert "hf download timm/vit_large_patch14_clip_224.openai open_clip_model.safetensors" in err
    assert f"{in_tmp / 'empty-cache'}/models--timm--vit_large_patch14_clip_224.openai" in err


def test_evaluate_warns_when_the_folder_holds_the_projectors_training_images(labelled, capsys, in_tmp):
    directory, features, labels = labelled
    train = list(range(0, 60))  # the projector's training split, as stage `features` caches it
    FeatureSet([str(i) for i in train], features[train].half().float(), [EKMAN6[labels[i]] for i in train],
               EKMAN6, meta={"dataset": "emoscenes"}).save(feature_path("emoscenes", "train"))
    for i in range(50, 70):  # 10 training images and 10 others
        folder = in_tmp / "feats" / EKMAN6[labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(features[i].half(), folder / f"{i}.pt")
    code, out, err = run(capsys, "evaluate", "--projector", str(directory), "--features-dir", "feats", "--json")
    assert code == 0 and json.loads(out)["seen_in_training"] == 10
    assert "warning: 10 of the 20 images in feats are among those" in err and "not a held-out" in err
    for i in range(50, 60):
        (in_tmp / "feats" / EKMAN6[labels[i]] / f"{i}.pt").unlink()
    code, out, err = run(capsys, "evaluate", "--projector", str(directory), "--features-dir", "feats", "--json")
    assert code == 0 and json.loads(out)["seen_in_training"] == 0 and "warning" not in err
