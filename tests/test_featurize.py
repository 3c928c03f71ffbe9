import pytest
import yaml

from tinyemo import featurize
from tinyemo.features import load_features
from tinyemo.taxonomy import EKMAN6, MIKELS8


@pytest.fixture(scope="module")
def features_stage(smoke):
    root = smoke.run_through("features")
    return root, smoke.metrics("features")


@pytest.mark.slow
def test_features_stage_writes_every_split(features_stage):
    root, metrics = features_stage
    assert metrics["profile"] == "smoke" and metrics["vision_tower"] == "tiny-random-cnn"
    sizes = yaml.safe_load((root / "params.yaml").read_text())["synthesize"]
    for split in ("train", "val", "test"):
        n = sizes[f"n_{split}"]
        summary = metrics["emoscenes"][split]
        assert summary["n"] == n and sum(summary["per_class"].values()) == n
        assert (summary["pooled_dim"], summary["patch_tokens"], summary["patch_dim"]) == (32, 16, 16)
        assert summary["images_per_second"] > 5
        features = load_features("emoscenes", split, root=root / "data/features")
        assert features.label_names == MIKELS8 and features.patches.shape == (n, 16, 16)
        assert features.meta["vision_tower"] == "tiny-random-cnn"


@pytest.mark.slow
def test_features_stage_carves_emotion6(features_stage):
    root, metrics = features_stage
    train, val = metrics["emotion6"]["train"], metrics["emotion6"]["val"]
    assert train["n"] + val["n"] == 1386
    assert 0.18 < val["n"] / 1386 < 0.22
    assert train["pooled_dim"] == val["pooled_dim"] == 768
    assert min(val["per_class"].values()) >= 40
    assert metrics["emotion6_has_test"] is False and "test" not in metrics["emotion6"]
    assert metrics["emotion6_source"].startswith("$TINYEMO_DATA_DIR")
    assert "/" not in metrics["emotion6_source"].split("(folder ")[1].rstrip("/)")
    train_set = load_features("emotion6", "train", root=root / "data/features")
    val_set = load_features("emotion6", "val", root=root / "data/features")
    assert not set(train_set.ids) & set(val_set.ids) and train_set.label_names == EKMAN6
    assert (root / "results/features/figures/pca.png").stat().st_size > 10_000


def test_missing_images_say_how_to_regenerate(tmp_path):
    (tmp_path / "scenes.jsonl").write_text("")
    with pytest.raises(ValueError, match="no train images.*dvc repro synthesize"):
        featurize.encode_emoscenes(None, "train", 4, root=tmp_path)


@pytest.mark.slow
def test_images_listed_but_absent_are_named(features_stage, tmp_path):
    root, _ = features_stage
    (tmp_path / "scenes.jsonl").write_text((root / "data/emoscenes/scenes.jsonl").read_text())
    n_train = yaml.safe_load((root / "params.yaml").read_text())["synthesize"]["n_train"]
    with pytest.raises(FileNotFoundError, match=rf"{n_train} train images listed in scenes.jsonl are missing"):
        featurize.encode_emoscenes(None, "train", 4, root=tmp_path)
