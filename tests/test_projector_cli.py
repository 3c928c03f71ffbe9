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


def cosine_scores(directory, rows):
    """Every label's cosine with the projected rows, computed here from the saved weights."""
    from torch.nn import functional as F

    from tinyemo.projector.artifact import load_projector

    artifact = load_projector(directory)
    with torch.no_grad():
        projected = F.normalize(artifact.model(rows.float()), dim=-1)
    return projected @ F.normalize(artifact.anchors, dim=-1).T, artifact.label_names


def test_classify_a_feature_file_prints_top_k(projector, capsys, in_tmp):
    directory, features, _ = projector
    torch.save(features[0].half(), in_tmp / "one.pt")
    expected, names = cosine_scores(directory, features[:1].half())
    values, ids = expected[0].topk(6)
    code, out, _ = run(capsys, "classify", "one.pt", "--top-k", "2")
    assert code == 0
    assert out == f"one.pt: {names[ids[0]]} {values[0]:.3f}, {names[ids[1]]} {values[1]:.3f}\n"
    code, out, _ = run(capsys, "classify", "one.pt", "--json", "--top-k", "6")
    result = json.loads(out)["results"][0]
    assert [t["label"] for t in result["top"]] == [names[i] for i in ids]
    assert [t["score"] for t in result["top"]] == pytest.approx(values.tolist(), abs=1e-4)
    assert result["label"] == names[ids[0]]


def test_classify_an_image_with_the_projectors_tower(projector, capsys, in_tmp):
    from tinyemo.models.vision import encode_images, load_vision_tower

    directory, _, _ = projector
    Image.new("RGB", (80, 60), (200, 40, 40)).save(in_tmp / "red.png")
    code, out, err = run(capsys, "classify", "red.png", "--json", "--top-k", "1")
    assert code == 0, err
    pooled, _ = encode_images(load_vision_tower("tiny-random-cnn"), [in_tmp / "red.png"])
    expected, names = cosine_scores(directory, pooled)
    result = json.loads(out)["results"][0]
    assert result["input"] == "red.png" and result["label"] == names[int(expected[0].argmax())]
    assert result["top"][0]["score"] == pytest.approx(float(expected[0].max()), abs=1e-4)


def test_evaluate_json_on_an_emotion6_layout(projector, capsys, in_tmp):
    directory, features, labels = projector
    rows = list(range(0, len(labels), 7))
    for i in rows:
        folder = in_tmp / "feats" / EKMAN6[labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(features[i].half(), folder / f"{i}.pt")
    expected, names = cosine_scores(directory, features[rows].half())
    truth = torch.as_tensor([int(labels[i]) for i in rows])
    hits = expected.argmax(dim=1) == truth
    code, out, err = run(capsys, "evaluate", "--projector", str(directory), "--features-dir", "feats", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == len(rows) and result["top1"] == pytest.approx(float(hits.float().mean()))
    for k, name in enumerate(names):
        mine = truth == k
        assert result["per_class"][name] == (pytest.approx(float(hits[mine].float().mean())) if mine.any() else None)
    code, out, _ = run(capsys, "evaluate", "--projector", str(directory), "--features-dir", "feats")
    assert code == 0 and f"top-1 {100 * float(hits.float().mean()):.2f} %" in out


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
