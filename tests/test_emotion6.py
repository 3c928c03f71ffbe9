import io
import os
import tarfile
from collections import Counter
from pathlib import Path, PurePosixPath

import pytest
import torch

from tinyemo import emotion6
from tinyemo.emotion6 import DataUnavailableError, FeatureFolderError
from tinyemo.taxonomy import EKMAN6


@pytest.fixture(scope="module")
def sample_train():
    if not os.environ.get(emotion6.ENV_VAR):
        pytest.skip("the shared Emotion6 sample is not beside the repository")
    return emotion6.read_feature_folder(emotion6.split_folders(emotion6.locate_emotion6())["train"])


def write_folder(root: Path, spec: dict[str, int], width=8):
    for label, count in spec.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            torch.save(torch.full((width,), float(i), dtype=torch.float16), root / label / f"{i}.pt")
    return root


def test_shared_sample_has_1386_clip_features(sample_train):
    assert len(sample_train) == 1386
    assert sample_train.pooled.shape == (1386, 768) and sample_train.pooled.dtype == torch.float32
    assert set(sample_train.labels) == set(EKMAN6)
    assert sample_train.label_names == EKMAN6
    assert len(set(sample_train.ids)) == 1386 and sample_train.ids[0].startswith("anger/")


def test_carve_is_stratified_seeded_and_disjoint(sample_train):
    train, val = emotion6.carve_validation(sample_train, 0.2, seed=0)
    assert len(train) + len(val) == len(sample_train)
    assert not set(train.ids) & set(val.ids)
    assert abs(len(val) - 0.2 * len(sample_train)) <= 1
    total, in_val = Counter(sample_train.labels), Counter(val.labels)
    for label in EKMAN6:
        assert abs(in_val[label] / total[label] - 0.2) < 0.02
    again, _ = emotion6.carve_validation(sample_train, 0.2, seed=0)
    other, _ = emotion6.carve_validation(sample_train, 0.2, seed=1)
    assert again.ids == train.ids and other.ids != train.ids
    row = sample_train.ids.index(val.ids[0])
    assert torch.equal(val.pooled[0], sample_train.pooled[row])


def test_reads_a_folder_in_numeric_id_order(tmp_path):
    fs = emotion6.read_feature_folder(write_folder(tmp_path, {"joy": 12, "fear": 2}))
    assert fs.ids[:3] == ["fear/0", "fear/1", "joy/0"] and fs.ids[-1] == "joy/11"
    assert fs.pooled[-1, 0] == 11.0


def test_unknown_label_folder_is_named(tmp_path):
    write_folder(tmp_path, {"joy": 2, "happiness": 2})
    with pytest.raises(FeatureFolderError, match=r"\['happiness'\].*valid labels: anger, disgust"):
        emotion6.read_feature_folder(tmp_path)


def test_corrupt_file_is_named(tmp_path):
    write_folder(tmp_path, {"joy": 2})
    (tmp_path / "joy" / "1.pt").write_bytes(b"not a tensor")
    with pytest.raises(FeatureFolderError, match=r"joy/1.pt is not a readable tensor file"):
        emotion6.read_feature_folder(tmp_path)


def test_inconsistent_width_is_named(tmp_path):
    write_folder(tmp_path, {"anger": 2}, width=8)
    write_folder(tmp_path, {"joy": 1}, width=6)
    with pytest.raises(FeatureFolderError, match=r"joy/0.pt has width 6 .* width 8"):
        emotion6.read_feature_folder(tmp_path)


def test_wrong_shape_is_named(tmp_path):
    write_folder(tmp_path, {"anger": 1})
    torch.save(torch.zeros(3, 4), tmp_path / "anger" / "7.pt")
    with pytest.raises(FeatureFolderError, match=r"anger/7.pt must hold a 1-D feature vector, got \(3, 4\)"):
        emotion6.read_feature_folder(tmp_path)


def test_empty_folder(tmp_path):
    with pytest.raises(FeatureFolderError, match="holds no <emotion>/<id>.pt files"):
        emotion6.read_feature_folder(tmp_path)


def test_env_var_without_the_layout(tmp_path, monkeypatch):
    monkeypatch.setenv(emotion6.ENV_VAR, str(tmp_path))
    with pytest.raises(DataUnavailableError, match="has no Emotion6/images/train/ folder"):
        emotion6.locate_emotion6()


def test_offline_without_env_var_says_how_to_provide(tmp_path, monkeypatch):
    def offline(url):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.delenv(emotion6.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(emotion6, "open_url", offline)
    with pytest.raises(DataUnavailableError) as err:
        emotion6.locate_emotion6()
    assert "TINYEMO_DATA_DIR is not set" in str(err.value)
    assert "set TINYEMO_DATA_DIR to a folder holding Emotion6/images/train/<emotion>/<id>.pt" in str(err.value)
    assert "go online" in str(err.value)
    assert not any(tmp_path.rglob("*.pt"))  # nothing half-written


def fake_tarball() -> bytes:
    top = f"TinyEmo-{emotion6.UPSTREAM_COMMIT}"
    images = f"{top}/{emotion6.UPSTREAM_DIR}/Emotion6/images"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in (f"{images}/train/joy/1.pt", f"{images}/test/fear/2.pt",
                     f"{images}/validation/fear/2.pt", f"{top}/README.md"):
            payload = io.BytesIO()
            torch.save(torch.ones(4, dtype=torch.float16), payload)
            info = tarfile.TarInfo(name)
            info.size = len(payload.getvalue())
            tar.addfile(info, io.BytesIO(payload.getvalue()))
    return buffer.getvalue()


def test_download_extracts_only_train_and_test_once(tmp_path, monkeypatch):
    calls = []

    def serve(url):
        calls.append(url)
        return io.BytesIO(fake_tarball())

    monkeypatch.delenv(emotion6.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(emotion6, "open_url", serve)
    root = emotion6.locate_emotion6()
    assert root == emotion6.cache_dir() and str(root).startswith(str(tmp_path))
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == ["Emotion6/images/test/fear/2.pt", "Emotion6/images/train/joy/1.pt"]
    assert set(emotion6.split_folders(root)) == {"train", "test"}
    assert emotion6.locate_emotion6() == root and len(calls) == 1
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temporary leftovers


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_only_regular_feature_files_below_the_data_dir_are_extracted():
    images = f"TinyEmo-{emotion6.UPSTREAM_COMMIT}/{emotion6.UPSTREAM_DIR}/Emotion6/images"
    assert emotion6._wanted(member(f"{images}/train/joy/1.pt")) == PurePosixPath("Emotion6/images/train/joy/1.pt")
    refused = [
        member(f"{images}/train/../../../../../../etc/evil.pt"),  # climbs out of the target
        member(f"{images}/train/joy/../../../../x.pt"),
        member(f"{images}/train/joy/link.pt", tarfile.SYMTYPE, "/etc/passwd"),  # a link
        member(f"{images}/train/joy/hard.pt", tarfile.LNKTYPE, "x"),
        member(f"{images}/train/joy", tarfile.DIRTYPE),
        member(f"{images}/validation/joy/1.pt"),  # a split never used
        member("TinyEmo-x/elsewhere/Emotion6/images/train/joy/1.pt"),  # outside the data dir
        member(f"/{images}/train/joy/1.pt"),  # an absolute path
        member(f"{images}/train"),  # a file where the split folder belongs
        member(f"{images}/train/1.pt"),  # a file with no emotion folder
    ]
    for info in refused:
        assert emotion6._wanted(info) is None, info.name


def test_a_tarball_with_a_climbing_member_writes_nothing_outside_the_cache(tmp_path, monkeypatch):
    images = f"TinyEmo-{emotion6.UPSTREAM_COMMIT}/{emotion6.UPSTREAM_DIR}/Emotion6/images"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in (f"{images}/train/joy/1.pt", f"{images}/train/../../../../../../../escaped.pt"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    monkeypatch.delenv(emotion6.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(emotion6, "open_url", lambda url: io.BytesIO(buffer.getvalue()))
    root = emotion6.locate_emotion6()
    everything = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert everything == [(root / "Emotion6/images/train/joy/1.pt").relative_to(tmp_path).as_posix()]


def test_fetch_copies_the_features_with_a_checksum_of_the_files(tmp_path, monkeypatch):
    source = tmp_path / "upstream"
    write_folder(source / "Emotion6" / "images" / "train", {"joy": 3, "fear": 2})
    write_folder(source / "Emotion6" / "images" / "validation", {"joy": 1})
    monkeypatch.setenv(emotion6.ENV_VAR, str(source))
    target = tmp_path / "data" / "raw" / "emotion6-clip"
    info = emotion6.fetch(target)
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*.pt"))
    assert files == [f"Emotion6/images/train/{e}/{i}.pt" for e, n in (("fear", 2), ("joy", 3)) for i in range(n)]
    assert info["n_files"] == 5 and info["splits"] == ["train"] and info["source"] == "$TINYEMO_DATA_DIR (folder upstream/)"
    assert emotion6.read_source(target) == info and emotion6.is_feature_root(target)
    assert [p.name for p in target.parent.iterdir()] == ["emotion6-clip"]  # no temporary leftovers
    _, before = emotion6.files_checksum(target / "Emotion6" / "images")
    assert before == info["files_sha256"]
    torch.save(torch.full((8,), 7.0, dtype=torch.float16), target / "Emotion6/images/train/joy/0.pt")
    assert emotion6.files_checksum(target / "Emotion6" / "images")[1] != before


def test_a_folder_of_images_is_not_a_feature_root(tmp_path):
    (tmp_path / "Emotion6" / "images" / "train" / "joy").mkdir(parents=True)
    (tmp_path / "Emotion6" / "images" / "train" / "joy" / "1.jpg").write_bytes(b"")
    assert not emotion6.is_feature_root(tmp_path)
    assert not emotion6.is_feature_root(tmp_path / "nowhere")
