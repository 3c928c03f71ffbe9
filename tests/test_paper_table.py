"""The paper_table stage: every column, the pipeline's own numbers in the table, clear errors."""
import csv
import json

import pytest
import torch

from tinyemo import config, taxonomy
from tinyemo.config import ConfigError
from tinyemo.datasets import dataset
from tinyemo.feature_store import FeatureSet
from tinyemo.projector import paper_numbers, paper_table, table_plan
from tinyemo.projector.joint import JointTrainingError
from tinyemo.projector.paper_table import FeatureSource
from tinyemo.projector.params import PaperTableParams

EIGHT = list(paper_numbers.COLUMNS)  # the paper's column order
LABELS = {name: dataset(name).label_names for name in EIGHT}
TRAINED = ["emotionroi", "webemo", "emoset"]
FAST = {"epochs": 10, "max_lr": 3.0e-3, "pct_start": 0.1}


def clustered_sets(width=24, per_class=(12, 4, 6), seed=0):
    """Features of the eight datasets from one tower: one well-separated cluster per label word
    (the same word in two datasets is the same cluster), so in-domain top-1 must be near 1."""
    g = torch.Generator().manual_seed(seed)
    words = sorted({label for names in LABELS.values() for label in names})
    centres = dict(zip(words, 4 * torch.nn.functional.normalize(torch.randn(len(words), width, generator=g), dim=1)))
    sets = {}
    for name, names in LABELS.items():
        for split, n in zip(("train", "val", "test"), per_class):
            labels = [label for label in names for _ in range(n)]
            pooled = torch.stack([centres[label] for label in labels]) + 0.3 * torch.randn(len(labels), width, generator=g)
            sets[name, split] = FeatureSet([f"{name}/{split}/{i}" for i in range(len(labels))], pooled, labels, names)
    return sets


def params(**changes):
    values = dict(train_datasets=TRAINED, eval_datasets=EIGHT, llms=["tiny-random-llama"], sources=[],
                  recipes={"paper": FAST, "tinyemo-700m": {**FAST, "loss": "ntxent", "synonym_p": 0.5}},
                  seeds=[0], lr_cv_folds=2)
    return PaperTableParams(**{**values, **changes})


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    """The stage's computation on all eight datasets, written to disk as the stage writes it."""
    p = params()
    metrics = paper_table.compute(p, base_llm="tiny-random-llama", source=FeatureSource.from_sets(clustered_sets()))
    out = tmp_path_factory.mktemp("paper_table")
    paper_table.write_outputs(metrics, out)
    return out


def test_every_column_is_present_with_its_class_count_and_flags(eight):
    table = (eight / "table.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| row"))
    for name in EIGHT:
        title = paper_numbers.column_title(name, len(LABELS[name]))
        assert title in header, title
    assert header.count("in-domain") == 3
    assert "| Emotion6 6 [shares images with training] |" in header  # EmotionROI was trained on
    assert "| FI 8 |" in header  # zero-shot: no mark
    metrics = json.loads((eight / "metrics.json").read_text())
    assert metrics["groups"][0]["leaked_columns"] == ["emotion6"]
    assert (eight / "figures" / "top1_heatmap.png").stat().st_size > 1000


def test_known_truth_in_domain_and_the_floor_and_ceiling(eight):
    metrics = json.loads((eight / "metrics.json").read_text())
    table = metrics["table"]
    assert set(table) == {"tiny-random-llama · paper", "tiny-random-llama · tinyemo-700m",
                          "random anchors (floor) · paper", paper_table.PROBE_ROW}
    for name in TRAINED:  # separable clusters: the probe and well-spread random anchors fit them
        assert table[paper_table.PROBE_ROW][name]["top1"]["mean"] > 0.95
        assert table["random anchors (floor) · paper"][name]["top1"]["mean"] > 0.9
        assert table["random anchors (floor) · paper"][name]["in_domain"]
    assert set(table[paper_table.PROBE_ROW]) == set(TRAINED)  # the probe needs labels: in-domain only
    chosen = metrics["selected_on_val"]["emotionroi+webemo+emoset"]
    rows = metrics["groups"][0]["rows"]
    assert rows[chosen]["val_top1"]["mean"] == max(row["val_top1"]["mean"] for row in rows.values())
    assert metrics["groups"][0]["val_datasets"] == TRAINED  # never a zero-shot column
    for name in EIGHT:
        cell = table["tiny-random-llama · paper"][name]
        assert cell["n_classes"] == len(LABELS[name]) and cell["n"] == 6 * len(LABELS[name])
        assert cell["in_domain"] == (name in TRAINED)


def test_the_table_shows_the_numbers_the_pipeline_computed(eight):
    metrics = json.loads((eight / "metrics.json").read_text())
    lines = {line.split(" | ")[0].strip("| "): line for line in (eight / "table.md").read_text().splitlines()}
    for row, cells in metrics["table"].items():
        shown = [part.strip() for part in lines[row].strip("|").split("|")][1:]
        for name, text in zip(EIGHT, shown):
            if name in cells:
                assert text.split(" ")[0] == f"{100 * cells[name]['top1']['mean']:.2f}", (row, name)
            else:
                assert text == "—"
    with open(eight / "table.csv") as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == sum(len(cells) for cells in metrics["table"].values())
    for record in records:
        cell = metrics["table"][record["row"]][record["dataset"]]
        assert float(record["top1_mean"]) == pytest.approx(100 * cell["top1"]["mean"], abs=1e-3)


def test_paper_numbers_and_delta_beside_ours(monkeypatch, tmp_path):
    published = paper_numbers.PUBLISHED["TinyEmo-700M"]["top1"]
    monkeypatch.setattr(paper_table, "published_for",
                        lambda llm: ("TinyEmo-700M", published) if llm == "tiny-random-llama" else None)
    p = params(recipes={"paper": FAST})
    metrics = paper_table.compute(p, base_llm="tiny-random-llama", source=FeatureSource.from_sets(clustered_sets()))
    paper_table.write_outputs(metrics, tmp_path)
    ours = 100 * json.loads((tmp_path / "metrics.json").read_text())["table"]["tiny-random-llama · paper"]["fi"]["top1"]["mean"]
    line = next(l for l in (tmp_path / "table.md").read_text().splitlines() if l.startswith("| tiny-random-llama"))
    assert f"{ours:.2f} (paper 64.16, Δ {ours - 64.16:+.2f})" in line
    floor = next(l for l in (tmp_path / "table.md").read_text().splitlines() if l.startswith("| random anchors"))
    assert "(paper " not in floor  # the paper's numbers sit beside LLM-anchor rows only
    assert "| TinyEmo-3.21B (not stated) | 70.54 | 83.82 | 41.41 | 77.27 |" in (tmp_path / "table.md").read_text()


def test_groups_of_different_towers_score_their_own_columns(tmp_path):
    sets = clustered_sets()
    wide = clustered_sets(width=40, seed=1)
    sets.update({key: value for key, value in wide.items() if key[0] == "fi"})
    p = params(train_datasets=[["emotionroi"], ["fi"]], eval_datasets=["emotionroi", "fi", "emoset"],
               recipes={"paper": FAST})
    metrics = paper_table.compute(p, base_llm="tiny-random-llama", source=FeatureSource.from_sets(sets))
    first, second = metrics["groups"]
    assert first["columns"] == ["emotionroi", "emoset"] and "fi" in first["skipped_columns"]
    assert second["columns"] == ["fi"] and second["width"] == 40
    assert metrics["table"]["tiny-random-llama · paper"]["fi"]["group"] == ["fi"]
    assert metrics["table"]["tiny-random-llama · paper"]["emoset"]["group"] == ["emotionroi"]


def test_joint_and_single_dataset_groups_get_rows_of_their_own():
    p = params(train_datasets=[["emotionroi", "emoset"], ["emoset"]], eval_datasets=["emoset", "fi"],
               recipes={"paper": FAST})
    metrics = paper_table.compute(p, base_llm="tiny-random-llama", source=FeatureSource.from_sets(clustered_sets()))
    joint, single = "tiny-random-llama · paper · trained on emotionroi+emoset", "tiny-random-llama · paper · trained on emoset"
    assert set(metrics["table"][joint]) == set(metrics["table"][single]) == {"emoset", "fi"}
    assert metrics["table"][single]["emoset"]["group"] == ["emoset"]
    assert metrics["row_info"][single] == {"source": "llm", "llm": "tiny-random-llama", "recipe": "paper"}
    assert f"{paper_table.PROBE_ROW} · trained on emoset" in metrics["table"]


def test_the_plan_and_its_estimate_are_printed_and_recorded_and_each_probe_searched_once(capsys, monkeypatch):
    from tinyemo.projector import logistic

    searched = []
    original = logistic.search
    monkeypatch.setattr(logistic, "search", lambda pooled, labels, **kw: searched.append(len(labels))
                        or original(pooled, labels, **kw))
    monkeypatch.setattr(logistic, "_SEARCHES", {})
    p = params(train_datasets=[["emotionroi", "emoset"], ["emoset"]], eval_datasets=["emoset", "fi"],
               recipes={"paper": FAST}, seeds=[0, 1])
    metrics = paper_table.compute(p, base_llm="tiny-random-llama", source=FeatureSource.from_sets(clustered_sets()))
    plan = metrics["plan"]
    # 2 groups x 2 rows (the LLM's, the random floor) x 2 seeds; 12 training images per class
    assert plan["trainings"] == 8 and plan["by_kind"] == {"joint": 4, "single-dataset": 4}
    assert plan["by_source"] == {"llm (tiny-random-llama)": 4, "random": 4}
    joint, single = plan["groups"]
    assert joint["training_rows"] == 12 * (6 + 8) and single["training_rows"] == 12 * 8
    assert joint["steps_per_training"] == [(168 // 32) * 10] and single["steps_per_training"] == [(96 // 32) * 10]
    assert plan["steps"] == 2 * 2 * 50 + 2 * 2 * 30
    assert plan["estimated_train_seconds"] > 0 and plan["measured_train_seconds"] > 0
    assert plan["device"] in ("cpu", "cuda") and plan["threads"] >= 1
    out = capsys.readouterr().out
    assert out.startswith("planned trainings: 8 (joint 4, single-dataset 4)")
    assert "estimated training time:" in out
    assert searched == [len(LABELS["emoset"]) * 12]  # EmoSet is in both groups: one search


def test_the_paper_profiles_table_plans_192_trainings():
    """Table VIII as the paper profile lays it out: 4 groups x 16 rows x 3 seeds."""
    sections = config.validate(config.render_profile("paper"))
    section = sections["paper_table"]
    rows = paper_table.plan_rows(section, sections["base"].llm)
    assert len(rows) == 4 * 3 + 1 * 3 + 1  # LLMs x recipes, sentence x recipes, the random floor
    groups = [table_plan.Group(tuple(group), 32_000 * len(group), 768) for group in section.groups()]
    trainings = table_plan.plan(groups, rows, lambda group, row: 64, len(section.seeds))
    summary = table_plan.estimate(trainings, {t.shape: 100.0 for t in trainings}, device="cpu")
    assert summary["trainings"] == 192 and summary["by_kind"] == {"joint": 48, "single-dataset": 144}
    assert summary["groups"][0]["steps_per_training"] == [96_000 // 32 * 5]  # the paper recipe: 5 epochs
    assert summary["estimated_train_seconds"] == pytest.approx(summary["steps"] / 100.0)
    assert "4 LLMs (" in summary["rows_per_group"] and "sentence x 3 recipes" in summary["rows_per_group"]


def test_bad_input_gets_a_clear_error():
    with pytest.raises(ConfigError, match=r"unknown evaluation datasets \['emotion7'\]; valid: .*emotion6"):
        config.validate_section("paper_table", {"train_datasets": ["emotion6"], "eval_datasets": ["emotion7"],
                                                "recipes": {"paper": {}}})
    with pytest.raises(ConfigError, match="recipe 'paper': loss"):
        config.validate_section("paper_table", {"train_datasets": ["fi"], "eval_datasets": ["fi"],
                                                "recipes": {"paper": {"loss": "hinge"}}})
    with pytest.raises(ConfigError, match="unknown LLM 'gpt-5'"):
        config.validate_section("paper_table", {"train_datasets": ["fi"], "eval_datasets": ["fi"],
                                                "llms": ["gpt-5"], "recipes": {"paper": {}}})
    sets = clustered_sets()
    sets.update({key: value for key, value in clustered_sets(width=40).items() if key[0] == "fi"})
    p = params(train_datasets=["emotionroi", "fi"], eval_datasets=["fi"], recipes={"paper": FAST})
    with pytest.raises(JointTrainingError, match=r"different widths \(emotionroi 24, fi 40\)"):
        paper_table.compute(p, base_llm="tiny-random-llama", source=FeatureSource.from_sets(sets))


def test_the_stage_runs_its_notebook_on_cached_features(tmp_path):
    """`tinyemo stage paper_table` (smoke profile) on cached Emotion6-like (768-d) and
    EmoScenes-like (32-d) features: two training groups, one column each, all outputs written."""
    import shutil

    from tests.conftest import REPO, working_directory
    from tinyemo import runner
    from tinyemo.feature_store import feature_path

    for name in ("notebooks", "profiles"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    g = torch.Generator().manual_seed(0)
    with working_directory(tmp_path):
        config.write_params("smoke")
        for name, names, width, splits in (("emotion6", taxonomy.EKMAN6, 768, ("train", "val")),
                                           ("emoscenes", taxonomy.MIKELS8, 32, ("train", "val", "test"))):
            centres = 3 * torch.randn(len(names), width, generator=g)
            for split in splits:
                labels = [label for label in names for _ in range(10)]
                pooled = centres.repeat_interleave(10, dim=0) + 0.5 * torch.randn(len(labels), width, generator=g)
                FeatureSet([f"{split}{i}" for i in range(len(labels))], pooled, labels, names).save(
                    feature_path(name, split))
        runner.run("paper_table")
    out = tmp_path / "results" / "paper_table"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["profile"] == "smoke" and metrics["eval_split"] == {"emotion6": "val", "emoscenes": "test"}
    assert [g["columns"] for g in metrics["groups"]] == [["emotion6"], ["emoscenes"]]
    assert set(metrics["table"]) == {"tiny-random-llama · paper", "tiny-random-llama · tinyemo-700m",
                                     "tiny-random-llama · tuned", "random anchors (floor) · paper",
                                     paper_table.PROBE_ROW}
    table = (out / "table.md").read_text()
    assert "| Emotion6 6 [in-domain, val split] | EmoScenes 8 [in-domain] |" in table
    tuned = metrics["table"]["tiny-random-llama · tuned"]
    line = next(l for l in table.splitlines() if l.startswith("| tiny-random-llama · tuned |"))
    assert line == (f"| tiny-random-llama · tuned | {100 * tuned['emotion6']['top1']['mean']:.2f} | "
                    f"{100 * tuned['emoscenes']['top1']['mean']:.2f} |")
    for name in ("table.csv", "figures/top1_heatmap.png", "notebook.ipynb", "notebook.html", "provenance.json"):
        assert (out / name).exists(), name


def test_fixture_folders_encoded_by_the_tiny_tower_give_all_eight_columns(tmp_path):
    """The eight datasets' fixture folders (each in its exact layout), listed by the dataset
    registry, encoded with the tiny random tower: the table has every column with its class
    count and the numbers the computation wrote."""
    from PIL import Image

    from tests import dataset_fixtures
    from tinyemo.models.vision import encode_images, load_vision_tower

    tower = load_vision_tower("tiny-random-cnn")
    sets = {}
    for name in EIGHT:
        root = tmp_path / "data" / name
        dataset_fixtures.build(name, root)
        records, _ = dataset(name).records(root)
        readable = []
        for record in records:  # the fixtures hold a corrupt image: `data check` skips it too
            try:
                with Image.open(record.path) as image:
                    image.convert("RGB")
                readable.append(record)
            except OSError:
                continue
        for split in ("train", "val", "test"):
            chosen = [r for r in readable if r.split == split]
            pooled, _ = encode_images(tower, [r.path for r in chosen])
            sets[name, split] = FeatureSet([r.id for r in chosen], pooled, [r.label for r in chosen],
                                           dataset(name).label_names)
    p = params(recipes={"paper": FAST})
    metrics = paper_table.compute(p, base_llm="tiny-random-llama", source=FeatureSource.from_sets(sets))
    out = tmp_path / "results"
    paper_table.write_outputs(metrics, out)
    written = json.loads((out / "metrics.json").read_text())
    header = next(line for line in (out / "table.md").read_text().splitlines() if line.startswith("| row"))
    expected = ["EmotionROI 6", "EmoSet 8", "WEBEmo 25", "Emotion6 6", "FI 8", "ArtPhoto 8", "Abstract 8",
                "UnbiasedEmo 6"]
    assert [cell.strip().split(" [")[0] for cell in header.strip("|").split("|")[1:]] == expected
    row = written["table"]["tiny-random-llama · paper"]
    assert set(row) == set(EIGHT)
    for name in EIGHT:
        assert row[name]["n"] == len(sets[name, "test"]) and row[name]["split"] == "test"
    line = next(l for l in (out / "table.md").read_text().splitlines() if l.startswith("| tiny-random-llama"))
    assert [c.strip() for c in line.strip("|").split("|")[1:]] == [
        f"{100 * row[name]['top1']['mean']:.2f}" for name in EIGHT]
