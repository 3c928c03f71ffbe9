import json
import pickle

import numpy as np
import pytest
import torch
from safetensors import safe_open

from tinyemo import feature_store
from tinyemo.feature_store import FeatureError, FeatureSet, PatchStore
from tinyemo.taxonomy import EKMAN6


def make_set(n=6, patches=True):
    gen = torch.Generator().manual_seed(0)
    return FeatureSet(
        ids=[f"img{i}" for i in range(n)], pooled=torch.randn(n, 8, generator=gen),
        labels=[EKMAN6[i % 3] for i in range(n)], label_names=EKMAN6,
        patches=torch.randn(n, 4, 5, generator=gen) if patches else None, meta={"tower": "x"},
    )


def test_single_file_round_trip(tmp_path):
    fs = make_set()
    fs.save(tmp_path / "emoscenes" / "train.safetensors")
    back = feature_store.load_features("emoscenes", "train", root=tmp_path)
    assert back.ids == fs.ids and back.labels == fs.labels and back.label_names == EKMAN6
    assert torch.equal(back.pooled, fs.pooled) and back.pooled.dtype == torch.float32
    assert torch.allclose(back.patches[:], fs.patches, atol=1e-3)  # stored as float16
    assert back.meta == {"tower": "x"}
    assert feature_store.available_splits("emoscenes", root=tmp_path) == ["train"]
    assert feature_store.available_splits("emotion6", root=tmp_path) == []


def test_shard_folder_round_trip(tmp_path):
    fs = make_set(n=11)
    fs.save(tmp_path / "emoscenes" / "val", shard_size=4, pooled_dtype=torch.float16)
    folder = tmp_path / "emoscenes" / "val"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [s["n"] for s in manifest["shards"]] == [4, 4, 3] and manifest["n"] == 11
    with safe_open(str(folder / "shard-00001.safetensors"), framework="pt") as f:
        assert f.get_tensor("pooled").dtype == torch.float16
        assert f.get_tensor("patches").dtype == torch.float16
    back = feature_store.load_features("emoscenes", "val", root=tmp_path)
    assert back.ids == fs.ids and back.labels == fs.labels and back.meta == {"tower": "x"}
    assert torch.equal(back.pooled, fs.pooled.half().float())
    assert isinstance(back.patches, PatchStore) and back.patches.shape == (11, 4, 5)
    assert torch.equal(back.patches.float(), fs.patches.half().float())
    assert feature_store.available_splits("emoscenes", root=tmp_path) == ["val"]
    assert feature_store.encoded_datasets(tmp_path) == ["emoscenes"]


def test_lazy_patches_equal_eager_patches_for_every_index_kind(tmp_path):
    fs = make_set(n=13)
    fs.save(tmp_path / "set", shard_size=5)
    lazy, eager = FeatureSet.load(tmp_path / "set").patches, fs.patches.half().float()
    assert len(lazy) == 13 and lazy.shape[1:] == (4, 5)
    cases = [[12, 0, 5, 6, 4, 4], torch.tensor([3, 9, 10]), np.array([1, 2]), slice(2, 11), slice(None, None, 3)]
    for index in cases:
        got = lazy[index]
        assert got.dtype == torch.float32 and torch.equal(got, eager[index]), index
    assert torch.equal(lazy[7], eager[7])
    sub = lazy.subset([10, 2, 6])
    assert torch.equal(sub[[2, 0]], eager[[6, 10]]) and sub.shape == (3, 4, 5)
    subset = FeatureSet.load(tmp_path / "set").subset([9, 1])
    assert isinstance(subset.patches, PatchStore) and torch.equal(subset.patches[:], eager[[9, 1]])


def test_patch_store_reads_only_the_rows_asked_for(tmp_path):
    fs = make_set(n=12)
    fs.save(tmp_path / "set", shard_size=4)
    lazy = FeatureSet.load(tmp_path / "set").patches
    lazy[[5]]
    assert set(lazy._handles) == {1}  # only the shard holding row 5 was opened


def test_patch_store_survives_pickling_for_dataloader_workers(tmp_path):
    fs = make_set(n=6)
    fs.save(tmp_path / "set", shard_size=4)
    lazy = FeatureSet.load(tmp_path / "set").patches
    lazy[[0]]
    clone = pickle.loads(pickle.dumps(lazy))
    assert torch.equal(clone[[5, 0]], lazy[[5, 0]])


def test_round_trip_without_patches(tmp_path):
    make_set(patches=False).save(tmp_path / "a.safetensors")
    assert FeatureSet.load(tmp_path / "a.safetensors").patches is None
    make_set(patches=False).save(tmp_path / "b")
    assert FeatureSet.load(tmp_path / "b").patches is None


def test_folder_without_manifest_is_an_unfinished_run(tmp_path):
    make_set().save(tmp_path / "emoscenes" / "train", shard_size=2)
    (tmp_path / "emoscenes" / "train" / "manifest.json").unlink()
    assert feature_store.available_splits("emoscenes", root=tmp_path) == []
    with pytest.raises(FeatureError, match="no manifest.json.*did not finish.*resumes"):
        feature_store.load_features("emoscenes", "train", root=tmp_path)


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
    with pytest.raises(FeatureError, match=r"run `dvc repro encode@emotion6`"):
        feature_store.load_features("emotion6", "test", root=tmp_path)


def test_invalid_dataset_and_split_names(tmp_path):
    with pytest.raises(FeatureError, match="invalid dataset name 'Emo Set'"):
        feature_store.load_features("Emo Set", "train", root=tmp_path)
    with pytest.raises(FeatureError, match=r"invalid split name '\.\./x'"):
        feature_store.load_features("emotion6", "../x", root=tmp_path)


def test_corrupt_file_is_named(tmp_path):
    path = tmp_path / "train.safetensors"
    make_set().save(path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(FeatureError, match="train.safetensors .*unreadable.*dvc repro encode"):
        FeatureSet.load(path)
