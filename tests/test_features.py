import pytest
import torch

from tinyemo import features
from tinyemo.features import FeatureError, FeatureSet
from tinyemo.taxonomy import EKMAN6


def make_set(n=6, patches=True):
    gen = torch.Generator().manual_seed(0)
    return FeatureSet(
        ids=[f"img{i}" for i in range(n)], pooled=torch.randn(n, 8, generator=gen),
        labels=[EKMAN6[i % 3] for i in range(n)], label_names=EKMAN6,
        patches=torch.randn(n, 4, 5, generator=gen) if patches else None, meta={"tower": "x"},
    )


def test_round_trip(tmp_path):
    fs = make_set()
    fs.save(tmp_path / "emoscenes" / "train.safetensors")
    back = features.load_features("emoscenes", "train", root=tmp_path)
    assert back.ids == fs.ids and back.labels == fs.labels and back.label_names == EKMAN6
    assert torch.equal(back.pooled, fs.pooled) and back.pooled.dtype == torch.float32
    assert torch.allclose(back.patches, fs.patches, atol=1e-3)  # stored as float16
    assert back.meta == {"tower": "x"}
    assert features.available_splits("emoscenes", root=tmp_path) == ["train"]
    assert features.available_splits("emotion6", root=tmp_path) == []


def test_round_trip_without_patches(tmp_path):
    make_set(patches=False).save(tmp_path / "a.safetensors")
    assert FeatureSet.load(tmp_path / "a.safetensors").patches is None


def test_label_ids_are_positions_in_label_names():
    assert make_set().label_ids().tolist() == [0, 1, 2, 0, 1, 2]


def test_subset_keeps_rows_aligned():
    fs = make_set()
    sub = fs.subset([4, 1])
    assert sub.ids == ["img4", "img1"] and torch.equal(sub.pooled, fs.pooled[[4, 1]])
    assert torch.equal(sub.patches, fs.patches[[4, 1]])


@pytest.mark.parametrize("change, message", [
    (dict(labels=["joy"] * 5 + ["love"]), "unknown label.*love.*valid: anger"),
    (dict(pooled=torch.zeros(5, 8)), r"pooled features must be \[N=6, D\]"),
    (dict(patches=torch.zeros(6, 5)), r"patches must be \[N=6, P, d\]"),
    (dict(ids=["a"] * 6), "unique"),
])
def test_inconsistent_sets_are_refused(change, message):
    fs = make_set()
    fields = dict(ids=fs.ids, pooled=fs.pooled, labels=fs.labels, label_names=fs.label_names,
                  patches=fs.patches)
    with pytest.raises(FeatureError, match=message):
        FeatureSet(**{**fields, **change})


def test_missing_split_says_how_to_make_it(tmp_path):
    with pytest.raises(FeatureError, match="run `dvc repro features`"):
        features.load_features("emotion6", "test", root=tmp_path)


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(FeatureError, match="valid: emoscenes, emotion6"):
        features.load_features("emoset", "train", root=tmp_path)
    with pytest.raises(FeatureError, match="valid: train, val, test"):
        features.load_features("emotion6", "validation", root=tmp_path)


def test_corrupt_file_is_named(tmp_path):
    path = tmp_path / "train.safetensors"
    make_set().save(path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(FeatureError, match="train.safetensors .*unreadable.*dvc repro features"):
        FeatureSet.load(path)
