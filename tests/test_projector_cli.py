"""`tinyemo classify` and `tinyemo evaluate`: outputs, JSON, and clear errors without tracebacks."""
import json

import pytest
import torch
from PIL import Image

from tests.projector_helpers import latent_world
from tinyemo.cli import main
from tinyemo.projector.artifact import save_projector
from tinyemo.projector.train import Recipe, train_projector
from tinyemo.taxonomy import EKMAN6

WIDTH = 32  # tiny-random-cnn's pooled width


@pytest.fixture
def projector(in_tmp):
    """A projector for 32-d features at the default path for images (models/projector/emoscenes)."""
    features, labels, anchors = latent_world(n_per_class=20, feature_dim=WIDTH)
    model = train_projector(features, labels, anchors, Recipe(epochs=2)).model
    directory = in_tmp / "models" / "projector" / "emoscenes"
    save_projector(directory, model, anchors.anchors, anchors.label_names, {"vision_tower": "tiny-random-cnn"})
    return directory, features, labels


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_classify_a_feature_file_prints_top_k(projector, capsys, in_tmp):
    _, features, _ = projector
    torch.save(features[0].half(), in_tmp / "one.pt")
    code, out, _ = run(capsys, "classify", "one.pt", "--top-k", "2")
    assert code == 0
    line = out.strip()
    assert line.startswith("one.pt: ") and sum(name in line for name in EKMAN6) == 2
    code, out, _ = run(capsys, "classify", "one.pt", "--json", "--top-k", "6")
    result = json.loads(out)["results"][0]
    assert result["label"] == result["top"][0]["label"] and len(result["top"]) == 6
    scores = [t["score"] for t in result["top"]]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)


def test_classify_an_image_with_the_projectors_tower(projector, capsys, in_tmp):
    Image.new("RGB", (80, 60), (200, 40, 40)).save(in_tmp / "red.png")
    code, out, err = run(capsys, "classify", "red.png", "--json")
    assert code == 0, err
    results = json.loads(out)["results"]
    assert results[0]["input"] == "red.png" and results[0]["label"] in EKMAN6


def test_evaluate_json_on_an_emotion6_layout(projector, capsys, in_tmp):
    directory, features, labels = projector
    for i in range(0, len(labels), 7):
        folder = in_tmp / "feats" / EKMAN6[labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(features[i].half(), folder / f"{i}.pt")
    code, out, err = run(capsys, "evaluate", "--projector", str(directory), "--features-dir", "feats", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert 0.0 <= result["top1"] <= 1.0 and result["n"] == len(range(0, len(labels), 7))
    assert set(result["per_class"]) == set(EKMAN6)
    code, out, _ = run(capsys, "evaluate", "--projector", str(directory), "--features-dir", "feats")
    assert code == 0 and "top-1" in out and "joy" in out


@pytest.mark.parametrize("case, message", [
    ("wrong_width", "do not fit this projector"),
    ("mixed", "width 768, which do not fit"),
    ("unknown_label", "not labels of this dataset"),
    ("corrupt", "not a readable"),
    ("suffix", "unsupported file type"),
    ("no_projector", "not a projector directory"),
])
def test_bad_input_is_a_clear_error(projector, capsys, in_tmp, case, message):
    directory, features, _ = projector
    folder = in_tmp / "bad" / "joy"
    folder.mkdir(parents=True)
    if case == "wrong_width":
        torch.save(torch.randn(768), in_tmp / "wide.pt")
        argv = ["classify", "wide.pt", "--projector", str(directory)]
    elif case == "mixed":
        torch.save(torch.randn(768), in_tmp / "wide.pt")
        Image.new("RGB", (40, 40)).save(in_tmp / "img.png")
        argv = ["classify", "img.png", "wide.pt"]
    elif case == "unknown_label":
        (in_tmp / "bad" / "happyness").mkdir()
        torch.save(features[0], folder / "1.pt")
        argv = ["evaluate", "--projector", str(directory), "--features-dir", "bad"]
    elif case == "corrupt":
        (folder / "1.pt").write_bytes(b"garbage")
        argv = ["evaluate", "--projector", str(directory), "--features-dir", "bad"]
    elif case == "suffix":
        (in_tmp / "notes.txt").write_text("hi")
        argv = ["classify", "notes.txt"]
    else:
        torch.save(features[0], in_tmp / "one.pt")
        argv = ["classify", "one.pt", "--projector", "models/projector/nothing"]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err and out == ""


def test_evaluate_rejects_features_of_another_width(projector, capsys, in_tmp):
    directory, _, _ = projector
    folder = in_tmp / "wide" / "joy"
    folder.mkdir(parents=True)
    torch.save(torch.randn(768), folder / "1.pt")
    code, _, err = run(capsys, "evaluate", "--projector", str(directory), "--features-dir", "wide")
    assert code == 2 and "width 768" in err and "expects 32" in err


def test_help_has_examples(capsys):
    for command in ("classify", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example" in capsys.readouterr().out
