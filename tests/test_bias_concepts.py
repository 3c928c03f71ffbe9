import numpy as np
import pytest
import torch

from tinyemo.bias import concepts, scores
from tinyemo.projector.anchors import build_anchors

TINY = {"anchor_source": "llm", "template": "image-expressing", "llm": "tiny-random-llama"}


def test_default_bank_has_every_group_and_no_duplicates():
    bank = concepts.load_concept_bank()
    assert set(bank.groups) == {"colours", "objects", "scene and weather", "frames and marks", "people"}
    assert len(set(bank.concepts)) == len(bank) > 60
    assert bank.group_of("teal frame") == "frames and marks"


def test_bank_extends_from_text_and_yaml(tmp_path):
    text = tmp_path / "extra.txt"
    text.write_text("# my concepts\nsunglasses\n  vehicles: red   car  \nteal\n\n")
    bank = concepts.load_concept_bank(text)
    default = concepts.load_concept_bank()
    assert len(bank) == len(default) + 2  # `teal` is already in the default bank
    assert bank.group_of("sunglasses") == "user" and bank.group_of("red car") == "vehicles"
    assert bank.group_of("teal") == "colours"
    mapping = tmp_path / "extra.yaml"
    mapping.write_text("logos: [brand logo, stamp]\n")
    assert concepts.load_concept_bank(mapping).concepts[-2:] == ("brand logo", "stamp")


@pytest.mark.parametrize("name, content, message", [
    ("missing.yaml", None, "does not exist"),
    ("bank.csv", "a,b", "unknown type '.csv'"),
    ("list.yaml", "- red\n- teal\n", "must be a mapping of groups"),
    ("group.yaml", "colours: red\n", "group 'colours' must hold a list"),
    ("empty.yaml", "colours: [red, '']\n", "non-empty string"),
    ("broken.yaml", "colours: [red\n", "not valid YAML"),
    ("blank.txt", "# nothing\n\n", "holds no concepts"),
])
def test_bad_concept_files_name_the_problem(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(concepts.ConceptBankError, match=message):
        concepts.load_concept_bank(path)


def test_concept_anchors_are_built_like_emotion_anchors():
    bank = concepts.ConceptBank(("fear", "teal frame"), ("x", "y"))
    anchors = concepts.concept_anchors(bank, TINY)
    assert anchors.shape == (2, 64)
    assert torch.allclose(anchors.norm(dim=1), torch.ones(2), atol=1e-5)
    # the concept "fear" must land exactly on the projector's anchor for the emotion fear
    emotion = build_anchors(["fear"], "llm", "image-expressing", llm="tiny-random-llama")
    assert torch.allclose(anchors[0], emotion[0], atol=1e-6)
    with pytest.raises(concepts.ConceptBankError, match="lacks \\['template'\\]"):
        concepts.concept_anchors(bank, {"anchor_source": "llm", "llm": "tiny-random-llama"})


def test_scores_are_normalised_per_concept_and_residualised():
    torch.manual_seed(0)
    emotion_anchors = torch.nn.functional.normalize(torch.randn(3, 16), dim=1)
    projected = torch.nn.functional.normalize(torch.randn(200, 16), dim=1)
    # concept 0 is an emotion anchor in disguise; concept 1 is unrelated
    concept_anchors = torch.stack([emotion_anchors[0] + 0.01 * torch.randn(16), torch.randn(16)])
    z = scores.concept_scores(projected, concept_anchors)
    assert np.allclose(z.mean(axis=0), 0, atol=1e-9) and np.allclose(z.std(axis=0), 1)
    emotion = scores.cosine_scores(projected, emotion_anchors)
    assert np.corrcoef(z[:, 0], emotion[:, 0])[0, 1] > 0.99
    net = scores.concept_scores(projected, concept_anchors, emotion_anchors)
    assert abs(np.corrcoef(net[:, 0], emotion[:, 0])[0, 1]) < 1e-6
    assert abs(np.corrcoef(net[:, 1], emotion[:, 0])[0, 1]) < 1e-6
    with pytest.raises(scores.ScoreError, match="same space"):
        scores.cosine_scores(projected, torch.randn(2, 8))
