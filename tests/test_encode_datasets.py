"""`tinyemo encode NAME` on a tiny folder of every dataset's layout, with the tiny random tower.

The fixtures say what `data check` must count; encoding opens every image too, so it must
store exactly the usable images, per class and split, and count the same skipped ones.
"""
import json

import pytest
import torch
import yaml

from tests.conftest import REPO
from tests.dataset_fixtures import BUILDERS, build
from tinyemo import config
from tinyemo.cli import main
from tinyemo.feature_store import available_splits, load_features

PAPER_DATASETS = sorted(set(BUILDERS) - {"emoscenes"})


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    from tests.conftest import working_directory

    root = tmp_path_factory.mktemp("encode-datasets")
    expected = {name: build(name, root / "data" / "raw" / name) for name in PAPER_DATASETS}
    tree = config.render_profile("smoke", REPO / "profiles")
    tree["encode"].update(datasets={n: {"root": f"data/raw/{n}"} for n in PAPER_DATASETS},
                          patches=["webemo"], shard_size=7, batch_size=4)
    config.validate(tree)
    (root / "params.yaml").write_text(yaml.safe_dump(tree))
    with working_directory(root):
        for name in PAPER_DATASETS:
            assert main(["encode", name]) == 0, name
    return root, expected


@pytest.mark.parametrize("name", PAPER_DATASETS)
def test_encode_stores_the_usable_images_of_every_layout(encoded, name):
    root, expected = encoded
    metrics = json.loads((root / "results" / "encode" / name / "metrics.json").read_text())
    want = expected[name]
    assert metrics["n_images"] == want["n_images"] and metrics["skipped"] == want["skipped"]
    assert metrics["per_class"] == want["classes"]
    splits = {split: n for split, n in want["splits"].items() if n}
    assert {s: v["n"] for s, v in metrics["splits"].items()} == splits
    assert available_splits(name, root / "data" / "features") == list(splits)
    for split, n in splits.items():
        features = load_features(name, split, root / "data" / "features")
        assert len(features) == n and features.dim == 32 and torch.isfinite(features.pooled).all()
        assert (features.patches is not None) == (name == "webemo")
    assert (root / "results" / "encode" / name / "provenance.json").exists()


def test_a_missing_root_stops_with_the_layout(encoded, capsys):
    from tests.conftest import working_directory

    root, _ = encoded
    with working_directory(root):
        (root / "data/raw/fi").rename(root / "data/raw/fi-moved")
        try:
            assert main(["encode", "fi"]) == 2
        finally:
            (root / "data/raw/fi-moved").rename(root / "data/raw/fi")
    assert "the fi root data/raw/fi does not exist" in capsys.readouterr().err
