"""Stage `encode`: shards, the one-shard memory bound, resume, skipped images, precomputed features."""
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from tests.conftest import REPO
from tinyemo import config, emotion6
from tinyemo.encode import EncodeSettings, SplitEncoder, encode_configured, encode_dataset
from tinyemo.feature_store import FeatureError, FeatureSet, load_features
from tinyemo.models.vision import load_vision_tower

LABELS = ("anger", "joy", "fear")


@dataclass(frozen=True)
class Record:  # the fields of tinyemo.datasets.ImageRecord that encoding reads
    id: str
    path: Path
    label: str
    split: str


@pytest.fixture(scope="module")
def tower():
    torch.manual_seed(0)
    return load_vision_tower("tiny-random-cnn")


def make_images(folder: Path, n: int, split="train") -> list[Record]:
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.new("RGB", (48 + i % 5, 40), (7 * i % 256, 90, 255 - 3 * i % 256)).save(path)
        records.append(Record(f"img{i:03d}", path, LABELS[i % 3], split))
    return records


def settings(**changes) -> EncodeSettings:
    return EncodeSettings(**{"batch_size": 3, "shard_size": 8, "patches": True, "device": "cpu", **changes})


def encoder(tower, records, folder, **changes) -> SplitEncoder:
    return SplitEncoder(tower, records, LABELS, folder, settings(**changes), {"dataset": "toy", "split": "train"})


def interrupt_after(n_shards: int):
    def on_shard(k: int) -> None:
        if k == n_shards:
            raise KeyboardInterrupt(f"killed after shard {k}")
    return on_shard


def test_more_images_than_a_shard_holds_with_one_shard_buffered(tower, tmp_path):
    records = make_images(tmp_path / "images", 50)
    run = encoder(tower, records, tmp_path / "out")
    result = run.run()
    assert result["n"] == 50 and result["encoded_now"] == 50 and result["images_per_second"] > 0
    assert 0 < run.buffered_peak <= 8  # never more than one shard's rows in memory
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["n"] for s in manifest["shards"]] == [8] * 6 + [2]
    features = FeatureSet.load(tmp_path / "out")
    images = [Image.open(r.path).convert("RGB") for r in records]
    with torch.inference_mode():
        pooled, patches = tower(tower.preprocess(images))
    assert features.ids == [r.id for r in records] and features.labels == [r.label for r in records]
    assert torch.allclose(features.pooled, pooled, atol=1e-5)
    assert torch.allclose(features.patches[:], patches, atol=1e-3)  # float16 on disk


def test_interrupted_run_resumes_with_the_same_result(tower, tmp_path):
    records = make_images(tmp_path / "images", 30)
    with pytest.raises(KeyboardInterrupt):
        encoder(tower, records, tmp_path / "out").run(on_shard=interrupt_after(2))
    folder = tmp_path / "out"
    assert sorted(p.name for p in folder.glob("shard-*.json")) == ["shard-00000.json", "shard-00001.json"]
    with pytest.raises(FeatureError, match="no manifest.json"):
        FeatureSet.load(folder)
    (folder / "shard-00002.safetensors").write_bytes(b"half-written by a killed run")
    result = encoder(tower, records, folder).run()
    assert result["resumed_shards"] == 2 and result["encoded_now"] == 30 - 16
    assert not (folder / "shard-00002.safetensors").read_bytes().startswith(b"half")
    encoder(tower, records, tmp_path / "whole").run()
    resumed, whole = FeatureSet.load(folder), FeatureSet.load(tmp_path / "whole")
    assert resumed.ids == whole.ids and torch.equal(resumed.pooled, whole.pooled)
    assert torch.equal(resumed.patches[:], whole.patches[:])


def test_a_changed_dataset_does_not_resume_an_old_run(tower, tmp_path):
    records = make_images(tmp_path / "images", 20)
    with pytest.raises(KeyboardInterrupt):
        encoder(tower, records, tmp_path / "out").run(on_shard=interrupt_after(1))
    relabelled = [Record(r.id, r.path, "fear" if i == 0 else r.label, r.split) for i, r in enumerate(records)]
    result = encoder(tower, relabelled, tmp_path / "out").run()
    assert result["resumed_shards"] == 0 and result["encoded_now"] == 20
    assert FeatureSet.load(tmp_path / "out").labels[0] == "fear"
    again = encoder(tower, relabelled, tmp_path / "out", shard_size=5).run()  # another shard size
    assert again["resumed_shards"] == 0


def test_corrupt_and_missing_images_are_skipped_and_counted(tower, tmp_path):
    records = make_images(tmp_path / "images", 12)
    records[4].path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    records[9].path.unlink()
    result = encoder(tower, records, tmp_path / "out").run()
    assert result["n"] == 10 and result["skipped"] == {"missing image": 1, "unreadable image": 1}
    features = FeatureSet.load(tmp_path / "out")
    assert "img004" not in features.ids and "img009" not in features.ids and len(features) == 10


def test_a_shard_of_only_unreadable_images_is_counted(tower, tmp_path):
    records = make_images(tmp_path / "images", 6)
    for record in records[:3]:
        record.path.write_bytes(b"not an image")
    result = encoder(tower, records, tmp_path / "out", shard_size=3).run()
    assert result["n"] == 3 and result["skipped"] == {"unreadable image": 3}
    assert FeatureSet.load(tmp_path / "out").ids == ["img003", "img004", "img005"]


def test_bf16_autocast_stores_pooled_in_bf16_and_patches_in_fp16(tower, tmp_path):
    records = make_images(tmp_path / "images", 7)
    encoder(tower, records, tmp_path / "half", dtype="bf16").run()
    encoder(tower, records, tmp_path / "full").run()
    with safe_open(str(tmp_path / "half" / "shard-00000.safetensors"), framework="pt") as f:
        assert f.get_tensor("pooled").dtype == torch.bfloat16
        assert f.get_tensor("patches").dtype == torch.float16
    half, full = FeatureSet.load(tmp_path / "half"), FeatureSet.load(tmp_path / "full")
    assert torch.allclose(half.pooled, full.pooled, rtol=0.05, atol=0.02)
    assert not torch.equal(half.pooled, full.pooled)


def test_dataloader_workers_give_the_same_features(tower, tmp_path):
    records = make_images(tmp_path / "images", 10)
    encoder(tower, records, tmp_path / "inline").run()
    encoder(tower, records, tmp_path / "workers", num_workers=2).run()
    a, b = FeatureSet.load(tmp_path / "inline"), FeatureSet.load(tmp_path / "workers")
    assert a.ids == b.ids and torch.equal(a.pooled, b.pooled)


def test_splits_get_their_own_folders_and_patches_are_optional(tower, tmp_path):
    records = make_images(tmp_path / "a", 9, "train") + make_images(tmp_path / "b", 4, "test")
    records = [Record(f"{r.split}{r.id}", r.path, r.label, r.split) for r in records]
    summary = encode_dataset(tower, "toy", records, LABELS, settings(patches=False), tmp_path / "features")
    assert list(summary) == ["train", "test"] and summary["test"]["per_class"] == {"anger": 2, "joy": 1, "fear": 1}
    test = load_features("toy", "test", root=tmp_path / "features")
    assert len(test) == 4 and test.patches is None and test.meta["vision_tower"] == "tiny-random-cnn"


def write_pt_folder(root: Path, per_label: int) -> Path:
    gen = torch.Generator().manual_seed(0)
    for label in ("anger", "joy", "sadness"):
        folder = root / "Emotion6" / "images" / "train" / label
        folder.mkdir(parents=True)
        for i in range(per_label):
            torch.save((torch.randn(12, generator=gen) * 5).half(), folder / f"{i}.pt")
    return root


def sections(root: str):
    tree = config.render_profile("smoke", REPO / "profiles")
    tree["encode"].update(datasets={"emotion6": {"root": root}}, patches=[])
    return config.validate(tree)


def test_precomputed_emotion6_is_stored_as_fp16_shards_with_a_carved_val(in_tmp):
    root = write_pt_folder(in_tmp / "data" / "raw" / "emotion6-clip", per_label=10)
    params = sections("data/raw/emotion6-clip")
    metrics = encode_configured("emotion6", params["base"], params["encode"])
    assert metrics["n_images"] == 30 and metrics["splits"]["val"]["n"] == 6
    assert metrics["per_class"] == {"anger": 10, "disgust": 0, "fear": 0, "joy": 10, "sadness": 10, "surprise": 0}
    assert metrics["source"]["n_files"] == 30 and metrics["vision_tower"] == "clip-vit-l-14"
    with safe_open("data/features/emotion6/train/shard-00000.safetensors", framework="pt") as f:
        assert f.get_tensor("pooled").dtype == torch.float16
    expected = emotion6.read_feature_folder(root / "Emotion6" / "images" / "train")
    val = load_features("emotion6", "val")
    assert val.meta["vision_tower"] == "clip-vit-l-14" and val.meta["split"] == "val"
    rows = [expected.ids.index(i) for i in val.ids]
    assert torch.equal(val.pooled, expected.pooled[rows])  # fp16 on disk loses nothing of fp16 data
    assert sorted(load_features("emotion6", "train").ids + val.ids) == sorted(expected.ids)


def test_missing_root_names_the_fix(in_tmp):
    params = sections("data/raw/nowhere")
    with pytest.raises(ValueError, match=r"emotion6 root data/raw/nowhere does not exist.*expected layout:\n<root>/images/<emotion>/\*.jpg"):
        encode_configured("emotion6", params["base"], params["encode"])


def test_cli_refuses_a_dataset_not_in_params(in_tmp, capsys):
    from tinyemo.cli import main

    config.write_params("smoke", profiles_dir=REPO / "profiles")
    assert main(["encode", "webemo"]) == 2
    assert "'webemo' is not in params.yaml encode.datasets (emoscenes, emotion6)" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    ({"patches": ["webemo"]}, r"patches lists \['webemo'\], not in datasets \(emoscenes, emotion6\)"),
    ({"datasets": {"fi": {"root": "/mnt/fi"}}, "patches": []}, "paths inside the repository"),
    ({"dtype": "fp8"}, r"encode.dtype: Input should be 'fp32', 'fp16' or 'bf16'"),
    ({"device": "gpu"}, "device must be auto, cpu, cuda, cuda:N or mps"),
    ({"datasets": {}, "patches": []}, "at least one dataset"),
])
def test_bad_encode_params_are_named(change, message):
    tree = config.render_profile("default", REPO / "profiles")
    tree["encode"].update(change)
    with pytest.raises(config.ConfigError, match=message):
        config.validate(tree)


def test_the_paper_profile_encodes_the_eight_datasets_with_clip_in_fp16():
    encode = config.render_profile("paper", REPO / "profiles")["encode"]
    expected = {"emotion6", "emotionroi", "emoset", "webemo", "fi", "artphoto", "abstract", "unbiasedemo"}
    assert {name: d["root"] for name, d in encode["datasets"].items() if name in expected} == {
        name: f"data/raw/{name}" for name in expected}
    assert (encode["dtype"], encode["num_workers"], encode["shard_size"]) == ("fp16", 8, 10_000)


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
import torch
from tests.test_encode import encoder, make_images
from tinyemo.models.vision import load_vision_tower

torch.set_num_threads(1)
records = make_images(Path(sys.argv[1]) / "images", 30)
kill = lambda k: os.kill(os.getpid(), signal.SIGKILL)  # no handler, no cleanup: a real kill
encoder(load_vision_tower("tiny-random-cnn"), records, Path(sys.argv[1]) / "out").run(on_shard=kill)
"""


def test_a_killed_process_resumes_from_its_complete_shard(tower, tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path)], cwd=REPO, capture_output=True)
    assert done.returncode == -9
    assert [p.name for p in (tmp_path / "out").glob("shard-*.json")] == ["shard-00000.json"]
    records = make_images(tmp_path / "images", 30)
    result = encoder(tower, records, tmp_path / "out").run()
    assert result["resumed_shards"] == 1 and result["encoded_now"] == 30 - 8 and result["n"] == 30
