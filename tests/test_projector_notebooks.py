"""The projector and ablate notebooks, run through the smoke pipeline, with bounds on metrics."""
import json

import pytest

from tinyemo.projector import ABLATION_FACTORS
from tinyemo.projector.artifact import load_projector

pytestmark = pytest.mark.slow


def test_projector_stage(smoke):
    root = smoke.run_through("projector")
    metrics = smoke.metrics("projector")
    emotion6 = metrics["emotion6"]
    # Real Emotion6 CLIP features; smoke anchors come from a tiny random LLM. Chance is 1/6.
    for name in ("paper_recipe", "tuned_recipe"):
        assert 0.45 < emotion6[name]["val"]["top1"]["mean"] <= 1.0
        assert emotion6[name]["train_seconds"]["mean"] < 30
    assert 0.5 < emotion6["logistic_regression"]["val"]["top1"] <= 1.0
    assert 0.5 < emotion6["nearest_centroid"]["val"]["top1"] <= 1.0
    assert emotion6["vision_tower"] == "clip-vit-l-14"
    assert set(emotion6["zeroshot"]) == {"llm", "random"}
    for result in emotion6["zeroshot"].values():
        assert 0.0 <= result["held_out_top1"] <= 1.0 and result["chance_held_out"] == 0.5
    assert "test" in metrics["emoscenes"]["tuned_recipe"]
    for dataset, tower in (("emotion6", "clip-vit-l-14"), ("emoscenes", "tiny-random-cnn")):
        artifact = load_projector(root / "models" / "projector" / dataset)
        assert artifact.vision_tower == tower and artifact.config["llm"] == "tiny-random-llama"
    plots = root / "results" / "projector" / "plots"
    assert (plots / "emotion6_confusion.csv").read_text().startswith("actual,predicted")
    assert len((plots / "emotion6_tuned_history.csv").read_text().splitlines()) == 1 + 5
    for figure in ("emotion6_tsne.png", "emotion6_confusion.png", "emotion6_accuracy_per_epoch.png"):
        assert (root / "results" / "projector" / "figures" / figure).stat().st_size > 1000


def test_ablate_stage(smoke):
    root = smoke.run_through("ablate")
    summary = smoke.metrics("ablate")
    assert summary["datasets"] == ["emotion6"]
    for factor in ABLATION_FACTORS:
        cell = json.loads((root / "results" / "ablate" / factor / "metrics.json").read_text())
        assert cell["reference"] is not None, factor
        for row in cell["levels"].values():
            assert 0.0 <= row["emotion6"]["val_top1"]["mean"] <= 1.0
        assert summary[factor]["emotion6"]["best_level"] in cell["levels"]
    # Reference levels are the same configuration, so they score the same in every cell.
    references = {factor: json.loads((root / "results" / "ablate" / factor / "metrics.json").read_text())
                  for factor in ABLATION_FACTORS}
    scores = {round(c["levels"][c["reference"]]["emotion6"]["val_top1"]["mean"], 6) for c in references.values()}
    assert len(scores) == 1
    table = (root / "results" / "ablate" / "table.md").read_text()
    assert "| loss | cosine (reference) |" in table
    assert (root / "results" / "ablate" / "figures" / "loss.png").exists()
