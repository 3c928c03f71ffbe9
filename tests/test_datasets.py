"""The dataset registry and `tinyemo data check`, on tiny folders in each dataset's exact layout."""
import json
import shutil
from collections import Counter

import pytest

from tests.dataset_fixtures import BUILDERS, build, write_corrupt, write_image
from tinyemo.cli import main
from tinyemo.datasets import (
    DATASETS, DatasetLayoutError, UnknownDatasetError, check, dataset, is_readable, stratified_split,
)
from tinyemo.taxonomy import TAXONOMIES

CARVED = ("emotion6", "fi", "artphoto", "abstract", "unbiasedemo")  # no upstream split at all


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every fixture dataset, built once: name -> (root, expected summary)."""
    base = tmp_path_factory.mktemp("datasets")
    return {name: (base / name, build(name, base / name)) for name in BUILDERS}


def test_the_registry_holds_every_dataset_with_a_known_taxonomy():
    assert set(DATASETS) == set(BUILDERS)
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.taxonomy in TAXONOMIES
        assert spec.label_names == TAXONOMIES[spec.taxonomy] and spec.layout
    assert dataset("webemo").label_names == TAXONOMIES["parrott25"]


def test_unknown_dataset_names_list_the_valid_ones():
    with pytest.raises(UnknownDatasetError, match="unknown dataset 'Emotion6'; valid names: abstract, artphoto"):
        dataset("Emotion6")
    with pytest.raises(UnknownDatasetError, match="valid names"):
        dataset("emotion")  # no prefix matching


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_check_counts_classes_splits_and_skips(built, name):
    root, expected = built[name]
    assert check(name, root) == expected
    assert expected["skipped"]["unreadable image"] == 1  # the corrupt image: counted, not fatal
    assert sum(expected["splits"].values()) == expected["n_images"] == sum(expected["classes"].values())


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_records_are_unique_labelled_and_every_class_trains(built, name):
    root, _ = built[name]
    spec = dataset(name)
    records, _ = spec.records(root)
    assert len({r.id for r in records}) == len(records)
    assert {r.label for r in records} <= set(spec.label_names)
    assert {r.split for r in records} == {"train", "val", "test"}
    assert {r.label for r in records if r.split == "train"} == {r.label for r in records}
    assert all(r.path.is_file() and not r.id.startswith("/") for r in records)


def test_listing_never_opens_an_image(built, monkeypatch):
    from PIL import Image

    def refuse(*args, **kwargs):
        raise AssertionError("records() opened an image")

    monkeypatch.setattr(Image, "open", refuse)
    for name, (root, expected) in built.items():
        records, _ = dataset(name).records(root)
        assert len(records) == expected["n_images"] + 1  # the corrupt image is listed, not opened


@pytest.mark.parametrize("name", CARVED + ("emotionroi",))
def test_carved_splits_are_seeded_and_stratified(built, name):
    root, _ = built[name]
    spec = dataset(name)
    first, _ = spec.records(root, seed=0)
    assert spec.records(root, seed=0)[0] == first
    other, _ = spec.records(root, seed=1)
    assert [r.id for r in other] == [r.id for r in first]  # same images ...
    assert [r.split for r in other] != [r.split for r in first]  # ... split another way
    per_class = Counter((r.label, r.split) for r in first)
    for label in spec.label_names:
        if name == "emotionroi":  # upstream's 3 test lines a class; 1 of 7 training lines to val
            assert (per_class[label, "test"], per_class[label, "val"]) == (3 + (label == "sadness"), 1)
        else:  # 10 or 11 images a class: 2 to test, 1 of the rest to val
            assert (per_class[label, "test"], per_class[label, "val"]) == (2, 1)


def test_stratified_split_known_counts_and_independence():
    ids = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(20)] + ["c0"]
    labels = [i[0] for i in ids]
    split = stratified_split(ids, labels, {"test": 0.2, "val": 0.1}, seed=3)
    counts = Counter((item[0], s) for item, s in split.items())
    assert (counts["a", "test"], counts["a", "val"], counts["a", "train"]) == (2, 1, 7)
    assert (counts["b", "test"], counts["b", "val"], counts["b", "train"]) == (4, 2, 14)
    assert split["c0"] == "train"  # a class of one stays in train
    assert stratified_split(ids[::-1], labels[::-1], {"test": 0.2, "val": 0.1}, seed=3) == split
    more = stratified_split(ids + ["b20", "b21"], labels + ["b", "b"], {"test": 0.2, "val": 0.1}, seed=3)
    assert {k: more[k] for k in ids if k[0] == "a"} == {k: split[k] for k in ids if k[0] == "a"}
    assert stratified_split(ids, labels, {"test": 0.2, "val": 0.1}, seed=4) != split
    with pytest.raises(ValueError, match="non-negative integer"):
        stratified_split(ids, labels, {"test": 0.2}, seed=-1)
    with pytest.raises(ValueError, match="leave nothing for train"):
        stratified_split(ids, labels, {"test": 0.6, "val": 0.4}, seed=0)


def test_upstream_defects_are_fixed(built):
    abstract, _ = dataset("abstract").records(built["abstract"][0])
    labels = {r.id: r.label for r in abstract}
    assert labels["abstract_000"] == "amusement"  # 10 votes beat 9 (as text, "9" > "10")
    assert "abstract_tie" not in labels
    emoset, _ = dataset("emoset").records(built["emoset"][0])
    copy = next(r for r in emoset if r.id == "image/awe/awe_00000")
    assert copy.path.parts[-3:] == ("image336", "awe", "awe_00000.jpg")
    assert next(r for r in emoset if r.id == "image/awe/awe_00001").path.parts[-3] == "image"
    webemo, _ = dataset("webemo").records(built["webemo"][0])
    assert {r.label for r in webemo if "cheerfullness" in r.id} == {"cheerfulness"}
    assert {r.label for r in webemo if "irritabilty" in r.id} == {"irritability"}
    artphoto, _ = dataset("artphoto").records(built["artphoto"][0])
    assert {r.label for r in artphoto if r.id.startswith("sad_")} == {"sadness"}


def test_webemo_accepts_corrected_folder_names(built, tmp_path):
    root, expected = built["webemo"]
    shutil.copytree(root, tmp_path / "webemo")
    for split in ("train", "validation", "test"):
        (tmp_path / "webemo" / split / "cheerfullness").rename(tmp_path / "webemo" / split / "cheerfulness")
    assert check("webemo", tmp_path / "webemo") == expected


def test_is_readable_decodes_the_whole_image(tmp_path):
    assert is_readable(write_image(tmp_path / "ok.jpg")) and is_readable(write_image(tmp_path / "ok.png"))
    assert not is_readable(write_corrupt(tmp_path / "truncated.jpg"))
    png = write_image(tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name in ("cut.png", "text.jpg", "empty.jpg", "absent.jpg"):
        assert not is_readable(tmp_path / name), name


def _break(root, name):
    """Remove one thing the layout needs; returns the text the error must name."""
    missing = {
        "emotion6": "images", "emotionroi": "training_testing_split/testing.txt", "emoset": "val.json",
        "webemo": "validation", "fi": "sadness", "artphoto": None, "abstract": "ABSTRACT_groundTruth.csv",
        "unbiasedemo": "images/love", "emoscenes": "scenes.jsonl",
    }[name]
    if missing is None:  # a flat folder without images
        for path in root.glob("*.jpg"):
            path.unlink()
        return "holds no image"
    target = root / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    return missing.split("/")[-1]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_broken_layout_names_what_is_missing_and_the_layout(built, name, tmp_path):
    root = shutil.copytree(built[name][0], tmp_path / name)
    what = _break(root, name)
    with pytest.raises(DatasetLayoutError) as error:
        dataset(name).records(root)
    message = str(error.value)
    assert what in message and "expected layout:" in message and dataset(name).layout in message
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        check(name, tmp_path / "nowhere")


def test_malformed_index_files_get_the_layout_message(built, tmp_path):
    emoset = shutil.copytree(built["emoset"][0], tmp_path / "emoset")
    (emoset / "train.json").write_text("{not json")
    with pytest.raises(DatasetLayoutError, match="train.json is not valid JSON"):
        dataset("emoset").records(emoset)
    abstract = shutil.copytree(built["abstract"][0], tmp_path / "abstract")
    (abstract / "ABSTRACT_groundTruth.csv").write_text("'','Joy','Anger'\n'a.jpg',1,0\n")
    with pytest.raises(DatasetLayoutError, match="not one per Mikels emotion"):
        dataset("abstract").records(abstract)


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prints_the_summary_as_json_and_as_a_table(built, capsys):
    root, expected = built["abstract"]
    code, out, _ = run(capsys, "data", "check", "abstract", str(root), "--json")
    assert code == 0 and json.loads(out) == expected
    code, out, _ = run(capsys, "data", "check", "abstract", str(root))
    assert code == 0 and f"abstract in {root}: {expected['n_images']} usable images" in out
    assert "tie in votes" in out and "contentment" in out
    root, expected = built["fi"]
    code, out, _ = run(capsys, "data", "check", "fi", str(root), "--json", "--seed", "1")
    summary = json.loads(out)
    assert code == 0 and summary["classes"] == expected["classes"]  # the seed moves splits only
    assert summary["n_images"] == expected["n_images"]


def test_cli_errors_exit_2_with_the_message(built, capsys, tmp_path):
    code, out, err = run(capsys, "data", "check", "emotion6", str(tmp_path))
    assert code == 2 and out == ""
    assert "images is missing" in err and "<root>/images/<emotion>/*.jpg" in err
    code, _, err = run(capsys, "data", "check", "Emotion6", str(built["emotion6"][0]))
    assert code == 2 and "valid names: abstract, artphoto, emoscenes" in err
    with pytest.raises(SystemExit) as refused:
        main(["data", "check", "fi", str(built["fi"][0]), "--seed", "-1"])
    assert refused.value.code == 2 and "--seed: must be at least 0, got -1" in capsys.readouterr().err
