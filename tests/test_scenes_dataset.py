import json
from pathlib import Path

import numpy as np
import pytest

from tinyemo.scenes import dataset, planted_bias, records, stats
from tinyemo.scenes.teacher import RuleTeacher
from tinyemo.taxonomy import MIKELS8, MIKELS_TO_EKMAN

BIAS = {"attribute": "frame_color", "value": "teal", "emotion": "fear", "strength": 0.9}
SIZES = {"train": 1600, "val": 800, "test": 800}


@pytest.fixture(scope="module")
def big():
    """Metadata only (no pixels): enough images to measure rates."""
    return dataset.build_records(SIZES, seed=3, label_noise=0.2, planted_biases=[BIAS])


def test_every_emotion_appears_in_every_split(big):
    counts = stats.class_counts(big)
    for split in records.SPLITS:
        assert sum(counts[split].values()) == SIZES[split]
        assert min(counts[split].values()) > 0.5 * SIZES[split] / 8, counts[split]
    assert all(r.label_ekman == MIKELS_TO_EKMAN[r.label] for r in big)


def test_label_noise_rate_is_near_the_parameter(big):
    for split in records.SPLITS:
        assert abs(stats.noise_rate(stats.by_split(big)[split]) - 0.2) < 0.04
    clean = dataset.build_records({"train": 400}, seed=3, label_noise=0.0)
    assert stats.noise_rate(clean) == 0.0
    # the noise stream is separate: same scenes whatever the noise (attributes aside: bias)
    def content(s):
        return s.objects, s.palette, s.light, s.weather, s.detail_seed

    assert [content(r.scene) for r in clean] == [content(r.scene) for r in big[:400]]


def test_rules_mostly_agree_with_the_sampler_but_not_always(big):
    assert 0.8 < stats.target_agreement(big) < 0.99


def test_planted_bias_is_in_train_only(big):
    planted = planted_bias.check_biases([BIAS])[0]
    splits = stats.by_split(big)
    train = stats.bias_strength(splits["train"], planted)
    assert abs(train["p_value_given_emotion"] - 0.9) < 0.05
    assert abs(train["p_value_given_other"] - planted.base_rate) < 0.04
    for split in ("val", "test"):
        measured = stats.bias_strength(splits[split], planted)
        assert abs(measured["p_value_given_emotion"] - planted.base_rate) < 0.08, (split, measured)
        assert not any(r.biased for r in splits[split])
    flagged = [r for r in splits["train"] if r.biased]
    assert flagged and all(r.label == "fear" and r.attributes["frame_color"] == "teal" for r in flagged)


def test_bias_strength_zero_removes_the_value(big):
    none = dataset.build_records({"train": 800}, seed=3, label_noise=0.2,
                                 planted_biases=[{**BIAS, "strength": 0.0}])
    assert all(r.attributes["frame_color"] != "teal" for r in none if r.label == "fear")


@pytest.mark.parametrize("spec, message", [
    ({**BIAS, "emotion": "joy"}, "unknown emotion in planted_biases 'joy'; valid: amusement, anger, awe"),
    ({**BIAS, "attribute": "border"}, "unknown attribute 'border'; valid: frame_color, corner_mark"),
    ({**BIAS, "value": "pink"}, "unknown value 'pink' of attribute 'frame_color'"),
    ({**BIAS, "strength": 1.5}, "strength must be within"),
])
def test_bad_planted_biases_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        dataset.build_records({"train": 8}, seed=0, label_noise=0.1, planted_biases=[spec])


def test_duplicate_biases_and_unknown_splits_are_refused():
    with pytest.raises(ValueError, match="two planted biases on attribute 'frame_color' for emotion 'fear'"):
        planted_bias.check_biases([BIAS, {**BIAS, "value": "olive"}])
    with pytest.raises(ValueError, match="unknown split"):
        dataset.build_records({"dev": 8}, seed=0, label_noise=0.1)


def test_seeded_determinism():
    a = dataset.build_records({"train": 40, "val": 8}, seed=7, label_noise=0.1, planted_biases=[BIAS])
    b = dataset.build_records({"train": 40, "val": 8}, seed=7, label_noise=0.1, planted_biases=[BIAS])
    c = dataset.build_records({"train": 40, "val": 8}, seed=8, label_noise=0.1, planted_biases=[BIAS])
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]
    assert [r.to_dict() for r in a] != [r.to_dict() for r in c]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("emo") / "emoscenes"
    recs, report = dataset.synthesize(n_train=24, n_val=8, n_test=8, image_size=48, label_noise=0.1,
                                      planted_biases=[BIAS], seed=1, root=root)
    return root, recs, report


def test_written_layout_and_readers(written):
    root, recs, report = written
    assert report.n_images == 40 and report.images_per_second > 0
    assert sorted(p.name for p in root.iterdir()) == [
        "dataset_card.md", "finetune.json", "finetune_test.json", "finetune_val.json", "images",
        "pretrain.json", "pretrain_test.json", "pretrain_val.json", "scenes.jsonl"]
    loaded = records.load_scene_records(root)
    assert [r.to_dict() for r in loaded] == [r.to_dict() for r in recs]
    assert [r.id for r in records.load_scene_records(root, "val")] == [f"{i:06d}" for i in range(24, 32)]
    for r in loaded:
        assert r.image == f"{r.split}/{r.id}.png" and r.image_path(root).exists()
    line = json.loads((root / "scenes.jsonl").read_text().splitlines()[0])
    for key in ("id", "split", "label", "label_ekman", "rule_label", "objects", "palette", "light",
                "weather", "attributes", "key_objects", "key_colours", "biased"):
        assert key in line
    card = (root / "dataset_card.md").read_text()
    assert "frame_color=teal -> fear" in card and "| awe | surprise |" in card


def test_llava_json_structure(written):
    root, recs, _ = written
    ids = {r.id: r for r in recs}
    finetune = records.load_conversations("finetune", root=root)
    pretrain = records.load_conversations("pretrain", root=root)
    assert len(finetune) == 24 and len(pretrain) == 72
    assert {item["id"] for item in finetune} == {r.id for r in recs if r.split == "train"}
    for item in finetune + pretrain:
        assert set(item) == {"id", "image", "conversations"}
        assert (root / "images" / item["image"]).exists() and item["image"].startswith("train/")
        assert [t["from"] for t in item["conversations"]] == ["human", "gpt"]
    for item in finetune:
        assert item["conversations"][1]["value"].endswith(f"Emotion: {ids[item['id']].label}")
    # every train image's three records, shuffled: a permutation of the order they were written in
    generated = [f"{r.id}-{kind}" for r in recs if r.split == "train" for kind in ("caption", "vqa", "sentiment")]
    shuffled = [item["id"] for item in pretrain]
    assert sorted(shuffled) == sorted(generated) and shuffled != generated
    test_items = records.load_conversations("finetune", "test", root=root)
    assert all(item["image"].startswith("test/") for item in test_items) and len(test_items) == 8


def test_readers_explain_missing_or_corrupt_data(tmp_path):
    with pytest.raises(records.MissingDataError, match="run `dvc repro synthesize`"):
        records.load_scene_records(tmp_path)
    with pytest.raises(records.MissingDataError, match="run `dvc repro synthesize`"):
        records.load_conversations("finetune", root=tmp_path)
    (tmp_path / "scenes.jsonl").write_text('{"id": "000000"}\n')
    with pytest.raises(records.MissingDataError, match="scenes.jsonl:1 is not a valid scene record"):
        records.load_scene_records(tmp_path)
    with pytest.raises(ValueError, match="unknown split 'dev'; valid splits: train, val, test"):
        records.load_scene_records(tmp_path, "dev")
    with pytest.raises(ValueError, match="unknown conversation kind 'chat'"):
        records.load_conversations("chat", root=tmp_path)


class BrokenTeacher(RuleTeacher):
    def finetune_record(self, scene, label, options):
        raise RuntimeError("teacher failed")


def test_a_failure_leaves_nothing_that_looks_complete(tmp_path, written):
    root = tmp_path / "emoscenes"
    recs = dataset.build_records({"train": 8}, seed=0, label_noise=0.1)
    with pytest.raises(RuntimeError, match="teacher failed"):
        dataset.write_dataset(recs, BrokenTeacher(), seed=0, image_size=32, root=root)
    assert list(tmp_path.iterdir()) == []
    # an existing complete data set survives a failed rewrite
    old_root = written[0]
    before = (old_root / "scenes.jsonl").read_text()
    with pytest.raises(RuntimeError):
        dataset.write_dataset(recs, BrokenTeacher(), seed=0, image_size=32, root=old_root)
    assert (old_root / "scenes.jsonl").read_text() == before
    assert not [p for p in old_root.parent.iterdir() if p.name.startswith(".")]


def test_reasoning_stats_measure_diversity(written):
    root, recs, _ = written
    finetune = records.load_conversations("finetune", root=root)
    measured = stats.reasoning_stats(finetune, recs)
    assert measured["distinct_ratio"] == 1.0 and measured["label_parsed"] == 1.0
    assert measured["key_object_mention"] == 1.0
    repeated = [finetune[0]] * len(finetune)
    assert stats.reasoning_stats(repeated, recs)["distinct_ratio"] == pytest.approx(1 / len(finetune))


@pytest.mark.parametrize("key, value, message", [
    ("planted_biases", [{**BIAS, "emotion": "joy"}], "unknown emotion in planted_biases 'joy'; valid: amusement"),
    ("planted_biases", [{**BIAS, "value": "pink"}], "unknown value 'pink' of attribute 'frame_color'"),
    ("planted_biases", [BIAS, {**BIAS, "value": "olive"}], "two planted biases on attribute 'frame_color'"),
    ("teacher", "gpt-9", "unknown teacher 'gpt-9'; valid: rule, openelm-270m-instruct"),
])
def test_profiles_with_bad_synthesize_parameters_are_refused(key, value, message):
    from tinyemo import config

    tree = config.render_profile("default")
    tree["synthesize"][key] = value
    with pytest.raises(config.ConfigError, match=message):
        config.validate(tree)
