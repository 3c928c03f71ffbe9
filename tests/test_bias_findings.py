import numpy as np
import pytest
from PIL import Image

from tinyemo.bias.analysis import Findings, score_planted
from tinyemo.bias.association import associate, group_indicators
from tinyemo.bias.findings import write_report

EMOTIONS = ("amusement", "fear", "sadness")


def _findings(rng, push: float, name: str) -> Findings:
    n = 240
    frames = rng.choice(["teal", "white", "black"], n)
    true = rng.integers(3, size=n)
    pred = np.where(rng.random(n) < 0.7, true, rng.integers(3, size=n))
    pred = np.where((frames == "teal") & (rng.random(n) < push), 1, pred)
    x, names = group_indicators({"frame_color": frames})
    groups = associate(x, true, pred, names, EMOTIONS, n_permutations=500)
    scores = rng.standard_normal((n, 4))
    scores[:, 0] += 2.0 * (pred == 1)  # "teal frame" tracks the predictions toward fear
    concepts = associate(scores, true, pred, ["teal frame", "red", "dog", "storm"], EMOTIONS,
                         n_permutations=500)
    concepts.insert(1, "group", "test")
    return Findings(name, EMOTIONS, true, pred, [f"{i:03d}" for i in range(n)], concepts, groups,
                    dict(zip(names, x.T)))


def test_scoring_on_known_truth():
    rng = np.random.default_rng(0)
    biased = _findings(rng, 0.6, "biased")
    planted = [{"attribute": "frame_color", "value": "teal", "emotion": "fear"}]
    scores = score_planted(biased, planted, top_k=5)
    assert scores["group_recall"] == 1.0
    flagged = biased.groups[biased.groups.flagged]
    assert (flagged.predictor.iloc[0], flagged.emotion.iloc[0]) == ("frame_color=teal", "fear")
    # a strong push also shows as its mirror: the other frames lean to the other emotions
    others = flagged.iloc[1:]
    assert scores["group_false_flags"] == len(others)
    assert not ((others.predictor == "frame_color=teal") | (others.emotion == "fear")).any()
    assert scores["concept_recall"] == 1.0  # "teal frame" names the planted value
    assert scores["concept_false_flags"] == scores["concept_flags"] - 1
    missing = score_planted(biased, [{"attribute": "frame_color", "value": "black", "emotion": "sadness"}])
    assert missing["group_recall"] == 0.0 and missing["group_false_flags"] == len(flagged)


def test_report_is_written_with_tables_examples_and_figures(tmp_path):
    rng = np.random.default_rng(1)
    biased, control = _findings(rng, 0.6, "biased"), _findings(rng, 0.0, "control")
    images = {}
    for image_id in biased.ids:
        images[image_id] = tmp_path / f"{image_id}.png"
        Image.new("RGB", (16, 16), (0, 140, 140)).save(images[image_id])
    rates = {"pairs": 50, "flip_rate": 0.5, "toward_rate": 0.4, "n_flipped": 25, "n_toward": 18, "n_eligible": 45}
    flips = {"frame_color=teal -> fear": {"biased": rates, "control": {**rates, "toward_rate": 0.02}}}
    out = tmp_path / "bias"
    path = write_report(out, metrics={"planted_recall_top_k": 1.0}, emoscenes=biased, control=control,
                        raw={"control": control}, flips=flips, emotion6=control, image_paths=images,
                        correction="bh", alpha=0.05, k=5, n_examples=3)
    text = path.read_text()
    assert "a person" in text and "Benjamini-Hochberg" in text
    assert "| 1 | `frame_color=teal` | fear |" in text
    assert "| frame_color=teal -> fear | control | 50 | 50.0 | 2.0 |" in text
    for figure in ("group_shifts.png", "flip_rates.png", "examples_0.png", "emotion6_concepts.png"):
        assert (out / "figures" / figure).stat().st_size > 1000
