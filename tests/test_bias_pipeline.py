"""The `bias` stage, executed as a notebook on the smoke profile's two planted biases.

The shared smoke pipeline is too small (64 training images) for the tiny random CNN to learn
a planted bias, so the known-truth checks run on a larger EmoScenes (1200 training images,
150 validation, 150 test) through the stages the bias stage needs; the shared smoke run only
checks that the stage runs end to end.
"""
import pandas as pd
import pytest
import yaml

from tinyemo import config, runner
from tinyemo.stages import COMMANDS_BEFORE

from .conftest import SmokePipeline, working_directory

WORLD = {"synthesize": {"n_train": 1200, "n_val": 150, "n_test": 150}}
STAGES = ("assets", "synthesize", "features", "projector", "bias")


@pytest.fixture(scope="module")
def bias_run(tmp_path_factory):
    pipeline = SmokePipeline(tmp_path_factory.mktemp("bias-world"))
    profile = pipeline.root / "profiles" / "smoke.yaml"
    profile.write_text(yaml.safe_dump(config.deep_merge(yaml.safe_load(profile.read_text()), WORLD)))
    with working_directory(pipeline.root):
        config.write_params("smoke")
        for stage in STAGES:
            if stage == COMMANDS_BEFORE:
                pipeline.run_commands()  # fetch-emotion6 and encode, as dvc.yaml runs them
            runner.run(stage)
    return pipeline.root, pipeline.metrics("bias")


@pytest.mark.slow
def test_bias_stage_runs_in_the_shared_smoke_pipeline(smoke):
    root = smoke.run_through("bias")
    metrics = smoke.metrics("bias")
    sizes = config.render_profile("smoke")["synthesize"]
    assert metrics["planted_biases"] == 2 and metrics["n_analysed"] == sizes["n_val"] + sizes["n_test"]
    assert (root / "results/bias/report.md").exists() and metrics["total_seconds"] < 60


@pytest.mark.slow
def test_both_planted_biases_rank_in_the_top_k(bias_run):
    root, metrics = bias_run
    planted = config.render_profile("smoke")["synthesize"]["planted_biases"]
    assert metrics["planted_biases"] == len(planted) == 2
    assert metrics["planted_recall_top_k"] == 1.0
    table = pd.read_csv(root / "results/bias/groups_biased.csv")
    top = set(zip(table.predictor.head(metrics["top_k"]), table.emotion.head(metrics["top_k"])))
    assert table.flagged.head(metrics["top_k"]).sum() >= 2
    for bias in planted:
        assert (f"{bias['attribute']}={bias['value']}", bias["emotion"]) in top


@pytest.mark.slow
def test_the_control_flags_no_planted_pair_and_its_flags_are_real(bias_run):
    root, metrics = bias_run
    control = pd.read_csv(root / "results/bias/groups_control.csv")
    planted = {(f"{b['attribute']}={b['value']}", b["emotion"])
               for b in config.render_profile("smoke")["synthesize"]["planted_biases"]}
    flagged = set(zip(control.predictor[control.flagged], control.emotion[control.flagged]))
    assert not flagged & planted
    assert metrics["control_flags"] == len(flagged)
    # Whatever the control does flag is a real dependence of its predictions on the
    # attribute: the counterfactual changes only the frame or mark pixels (rendering is
    # deterministic), so a projector that ignored them would flip nothing. The tiny random
    # CNN of the smoke profile reads global colour, so frame colours that resemble the
    # emotion palettes (black: the night palettes) move its predictions even untrained on any
    # correlation; the default profile's pretrained tower does not (its control flags nothing).
    probed = metrics["counterfactual_flagged"]
    for predictor, emotion in flagged:
        rates = probed[f"{predictor} -> {emotion}"]["control"]
        assert rates["toward_rate"] >= 0.05, (predictor, emotion, rates)


@pytest.mark.slow
def test_counterfactuals_flip_the_biased_projector_far_more_than_the_control(bias_run):
    _, metrics = bias_run
    assert len(metrics["counterfactual"]) == 2
    for name, rates in metrics["counterfactual"].items():
        assert rates["biased"]["pairs"] > 50
        assert rates["biased"]["toward_rate"] >= 0.2, name
        assert rates["biased"]["toward_rate"] >= rates["control"]["toward_rate"] + 0.15, name


@pytest.mark.slow
def test_concept_lens_is_quiet_once_meaningless_phrases_are_the_null(bias_run):
    _, metrics = bias_run
    assert metrics["control_concept_flags"] == 0
    assert metrics["concept_false_flags"] == 0
    # the naive lens (raw cosines) flags many pairs even without any planted bias
    assert metrics["raw_concept_flags_control"] > 20


@pytest.mark.slow
def test_report_and_figures_are_written(bias_run):
    root, metrics = bias_run
    report = (root / "results/bias/report.md").read_text()
    assert "a person" in report and "Emotion6" in report and "Counterfactual probe" in report
    for figure in ("group_shifts.png", "flip_rates.png", "emotion6_concepts.png", "examples_0.png"):
        assert (root / "results/bias/figures" / figure).stat().st_size > 1000
    assert metrics["total_seconds"] < 120
