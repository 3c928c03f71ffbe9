"""The smoke pipeline through `fetch-emotion6`, `encode` (one run per dataset) and `features`."""
import json

import pytest
import yaml

from tinyemo.feature_store import PatchStore, load_features
from tinyemo.taxonomy import EKMAN6, MIKELS8


@pytest.fixture(scope="module")
def features_stage(smoke):
    root = smoke.run_through("features")
    return root, smoke.metrics("features")


def encode_metrics(root, name):
    return json.loads((root / "results" / "encode" / name / "metrics.json").read_text())


@pytest.mark.slow
def test_encode_writes_every_emoscenes_split_in_shards(features_stage):
    root, metrics = features_stage
    assert metrics["profile"] == "smoke" and metrics["vision_tower"] == "tiny-random-cnn"
    params = yaml.safe_load((root / "params.yaml").read_text())
    run = encode_metrics(root, "emoscenes")
    assert run["n_images"] == sum(params["synthesize"][f"n_{s}"] for s in ("train", "val", "test"))
    assert run["skipped"] == {} and run["images_per_second"] > 5
    assert (root / "results/encode/emoscenes/provenance.json").exists()
    for split in ("train", "val", "test"):
        n = params["synthesize"][f"n_{split}"]
        summary = metrics["emoscenes"][split]
        assert summary["n"] == n and sum(summary["per_class"].values()) == n
        assert (summary["pooled_dim"], summary["patch_tokens"], summary["patch_dim"]) == (32, 16, 16)
        features = load_features("emoscenes", split, root=root / "data/features")
        assert features.label_names == MIKELS8 and isinstance(features.patches, PatchStore)
        assert features.patches.shape == (n, 16, 16) and features.meta["vision_tower"] == "tiny-random-cnn"
    manifest = json.loads((root / "data/features/emoscenes/train/manifest.json").read_text())
    shard = params["encode"]["shard_size"]
    assert len(manifest["shards"]) == -(-params["synthesize"]["n_train"] // shard) > 1


@pytest.mark.slow
def test_emotion6_is_fetched_and_carved(features_stage):
    root, metrics = features_stage
    source = json.loads((root / "data/raw/emotion6-clip/SOURCE.json").read_text())
    assert source["n_files"] == 1386 and len(source["files_sha256"]) == 64
    assert source["source"].startswith("$TINYEMO_DATA_DIR") and "/" not in source["source"].split("(folder ")[1].rstrip("/)")
    train, val = metrics["emotion6"]["train"], metrics["emotion6"]["val"]
    assert train["n"] + val["n"] == 1386 and 0.18 < val["n"] / 1386 < 0.22
    assert train["pooled_dim"] == val["pooled_dim"] == 768
    assert min(val["per_class"].values()) >= 40
    assert metrics["emotion6_has_test"] is False and "test" not in metrics["emotion6"]
    assert encode_metrics(root, "emotion6")["source"]["files_sha256"] == source["files_sha256"]
    train_set = load_features("emotion6", "train", root=root / "data/features")
    val_set = load_features("emotion6", "val", root=root / "data/features")
    assert not set(train_set.ids) & set(val_set.ids) and train_set.label_names == EKMAN6
    assert (root / "results/features/figures/pca.png").stat().st_size > 10_000


@pytest.mark.slow
def test_encode_again_resumes_everything(features_stage, tmp_path):
    import shutil

    from tests.conftest import working_directory
    from tinyemo.cli import main

    root, _ = features_stage
    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    for folder in ("data/emoscenes", "data/features/emoscenes"):
        shutil.copytree(root / folder, tmp_path / folder)
    with working_directory(tmp_path):
        assert main(["encode", "emoscenes"]) == 0
    run = encode_metrics(tmp_path, "emoscenes")
    assert run["encoded_now"] == 0 and run["images_per_second"] is None
    assert run["n_images"] == encode_metrics(root, "emoscenes")["n_images"]
    assert all(s["resumed_shards"] >= 1 for s in run["splits"].values())


def test_the_summary_without_encoded_features_says_what_to_run(tmp_path):
    from tinyemo import features
    from tinyemo.feature_store import FeatureError

    with pytest.raises(FeatureError, match="holds no encoded dataset; run `dvc repro encode`"):
        features.load_all(tmp_path)
