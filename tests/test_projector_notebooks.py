"""The projector and ablate notebooks, run through the smoke pipeline, with bounds on metrics."""
import json
import math

import pytest

from tests.conftest import working_directory
from tinyemo import runner
from tinyemo.feature_store import load_features
from tinyemo.projector import ABLATION_FACTORS
from tinyemo.projector.artifact import load_projector

pytestmark = pytest.mark.slow


def test_projector_stage(smoke):
    root = smoke.run_through("projector")
    metrics = smoke.metrics("projector")
    emotion6 = metrics["emotion6"]
    # Emotion6's sample has no test split: 20 % of train is carved off before selection.
    assert emotion6["n"]["test"] == math.ceil(0.2 * (emotion6["n"]["train"] + emotion6["n"]["test"]))
    assert "carved from train" in emotion6["test_source"]
    chosen = emotion6["selection"]
    assert chosen["selected"] in chosen["scores"] and chosen["scores"]["paper"]["top1"]["n"] == 2
    assert chosen["scores"]["paper"]["vs_paper_points"]["mean"] == 0.0
    # The shipped numbers are the shipped model's: the table, the artifact and the per-class agree.
    held = emotion6["held_out_top1"]["test"]
    assert held["shipped projector"] == emotion6["shipped"]["test"]["top1"]
    assert held["shipped minus logistic (points)"] == pytest.approx(
        100 * (held["shipped projector"] - held["logistic regression"]))
    # Real CLIP features, smoke anchors from a tiny random LLM: far above chance (1/6), and the
    # projector against random anchors is a floor below the probe.
    assert held["logistic regression"] > 0.5 and held["shipped projector"] > 0.4
    assert emotion6["vision_tower"] == "clip-vit-l-14"
    assert set(emotion6["zeroshot"]) == {"llm", "random"}
    for result in emotion6["zeroshot"].values():
        assert result["chance_held_out"] == 0.5
    assert set(metrics["emoscenes"]["held_out_top1"]) == {"test", "val"}
    # both token choices of the anchors, once on Emotion6: the smoke LLM keeps the BOS row, which
    # every anchor shares, so its anchors sit closer together than the tokenizer's own tokens'
    tokens = metrics["anchor_tokens"]
    assert tokens["used"] == "with-bos" and tokens["with-bos"]["n_test"] == emotion6["n"]["test"]
    assert tokens["with-bos"]["mean_cosine_between_labels"] > tokens["as-tokenized"]["mean_cosine_between_labels"]
    for row in (tokens["with-bos"], tokens["as-tokenized"]):
        low, high = row["test_top1_ci95"]
        assert 0.3 < low <= row["paper_recipe_test_top1"] <= high
    for dataset, tower in (("emotion6", "clip-vit-l-14"), ("emoscenes", "tiny-random-cnn")):
        artifact = load_projector(root / "models" / "projector" / dataset)
        assert artifact.vision_tower == tower and artifact.config["llm"] == "tiny-random-llama"
        assert artifact.config["candidate"] == metrics[dataset]["selection"]["selected"]
        assert artifact.config["top1"]["test"] == metrics[dataset]["held_out_top1"]["test"]["shipped projector"]
    # the shipped model, evaluated here on the cached validation features it never saw
    with working_directory(root):
        val = load_features("emotion6", "val")
    saved = load_projector(root / "models" / "projector" / "emotion6")
    predicted, _ = saved.predict(val.pooled)
    top1 = float((predicted == val.label_ids()).float().mean())
    assert saved.config["top1"]["val"] == pytest.approx(top1)
    plots = root / "results" / "projector" / "plots"
    assert (plots / "emotion6_confusion.csv").read_text().startswith("actual,predicted")
    assert len((plots / "emotion6_confusion.csv").read_text().splitlines()) == 1 + emotion6["n"]["test"]
    assert len((plots / "emotion6_shipped_history.csv").read_text().splitlines()) == 1 + 5
    for figure in ("emotion6_tsne.png", "emotion6_confusion.png", "emotion6_accuracy_per_epoch.png", "cv_top1.png"):
        assert (root / "results" / "projector" / "figures" / figure).stat().st_size > 1000


def test_ablate_stage(smoke):
    root = smoke.run_through("ablate")
    summary = smoke.metrics("ablate")
    assert summary["datasets"] == ["emotion6"]
    n_val = smoke.metrics("projector")["emotion6"]["n"]["val"]
    for factor in ABLATION_FACTORS:
        cell = json.loads((root / "results" / "ablate" / factor / "metrics.json").read_text())
        assert cell["reference"] is not None, factor
        for row in cell["levels"].values():
            score = row["emotion6"]["val_top1"]
            assert len(score["runs"]) == len(summary["seeds"])
            assert score["mean"] == pytest.approx(sum(score["runs"]) / len(score["runs"]))
            # a top-1 over n_val images is a whole number of images over n_val (float32 rounding aside)
            assert all(abs(run * n_val - round(run * n_val)) < 1e-3 for run in score["runs"]), (score, n_val)
        assert summary[factor]["emotion6"]["best_level"] in cell["levels"]
    # Reference levels are the same configuration, so they score the same in every cell.
    references = {factor: json.loads((root / "results" / "ablate" / factor / "metrics.json").read_text())
                  for factor in ABLATION_FACTORS}
    scores = {round(c["levels"][c["reference"]]["emotion6"]["val_top1"]["mean"], 6) for c in references.values()}
    assert len(scores) == 1
    table = (root / "results" / "ablate" / "table.md").read_text()
    assert "| loss | cosine (reference) |" in table
    assert (root / "results" / "ablate" / "figures" / "loss.png").exists()


def test_the_ablate_stage_gathers_cells_written_by_an_earlier_run(smoke):
    """Cells already on disk (the ablate-cell@<factor> stages' outputs) are reused, not retrained."""
    root = smoke.run_through("ablate")
    path = root / "results" / "ablate" / "loss" / "metrics.json"
    original = path.read_text()
    cell = json.loads(original)
    level = next(name for name in cell["levels"] if name != cell["reference"])
    cell["levels"][level]["emotion6"]["val_top1"] = {"mean": 0.123456, "std": 0.0, "runs": [0.123456] * 2}
    path.write_text(json.dumps(cell))
    try:
        with working_directory(root):
            runner.run("ablate")
        table = (root / "results" / "ablate" / "table.md").read_text()
        assert f"| loss | {level} | 12.35 ± 0.00" in table
        assert json.loads(path.read_text()) == cell  # read, not rewritten
    finally:
        path.write_text(original)
        with working_directory(root):
            runner.run("ablate")
