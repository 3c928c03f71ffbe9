"""The stage runner: parameters as Python values, refusals, provenance, failure clean-up."""
import json
import textwrap

import pytest

from tinyemo import config, runner, stages
from tinyemo.config import Section, register_section

NOTEBOOK = textwrap.dedent(
    '''
    # %% tags=["parameters"]
    seed = 0
    sizes = [1]
    options = {"a": 1}
    fail = False

    # %%
    import json, pathlib
    out = pathlib.Path("results/probe")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"seed": seed, "sizes": sizes, "options": options}))
    assert not fail, "asked to fail"
    '''
)


class ProbeParams(Section):
    sizes: list[int]
    options: dict[str, int]
    fail: bool = False


@pytest.fixture
def probe_repo(in_tmp, monkeypatch):
    register_section("probe", ProbeParams)
    monkeypatch.setitem(stages.STAGES, "probe", stages.Stage("probe", "probe.py", "probe"))
    (in_tmp / "notebooks").mkdir()
    (in_tmp / "notebooks" / "probe.py").write_text(NOTEBOOK)
    (in_tmp / "dvc.yaml").write_text(
        "stages:\n  probe:\n    cmd: tinyemo stage probe\n    metrics:\n"
        "      - results/probe/metrics.json:\n          cache: false\n"
    )

    def write_params(**probe):
        tree = config.render_profile("smoke", profiles_dir=config.Path(__file__).parents[1] / "profiles")
        tree["probe"] = {"sizes": [2, 3], "options": {"b": 4}, **probe}
        (in_tmp / "params.yaml").write_text(config.yaml.safe_dump(tree))

    yield write_params
    config.SECTION_SCHEMAS.pop("probe", None)


def test_parameters_arrive_as_python_values_with_provenance(probe_repo, in_tmp):
    probe_repo()
    record = runner.run("probe")
    metrics = json.loads((in_tmp / "results/probe/metrics.json").read_text())
    assert metrics == {"seed": 0, "sizes": [2, 3], "options": {"b": 4}}
    provenance = json.loads((in_tmp / "results/probe/provenance.json").read_text())
    assert provenance["parameters"]["sizes"] == [2, 3]
    assert {"git", "packages", "hardware", "wall_time_s", "python"} <= provenance.keys()
    assert provenance["packages"]["torch"].startswith("2.14")
    assert (in_tmp / "results/probe/notebook.html").stat().st_size > 1000
    assert record["wall_time_s"] > 0


def test_undeclared_parameter_is_refused(probe_repo, monkeypatch):
    class Wider(ProbeParams):
        extra_knob: int = 1

    register_section("probe", Wider)
    probe_repo()
    with pytest.raises(config.ConfigError, match=r"does not declare the parameter\(s\) \['extra_knob'\]"):
        runner.run("probe")


def test_failed_stage_leaves_no_output_that_looks_complete(probe_repo, in_tmp):
    probe_repo(fail=True)
    with pytest.raises(runner.StageError, match="asked to fail"):
        runner.run("probe")
    assert not (in_tmp / "results/probe/metrics.json").exists()
    assert not (in_tmp / "results/probe/provenance.json").exists()
    assert (in_tmp / "results/probe.failed.ipynb").exists()


def test_unknown_stage_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid stages: assets, synthesize"):
        stages.stage("asets")


def test_keys_of_other_sections_a_stage_reads_arrive_as_parameters(probe_repo, in_tmp, monkeypatch):
    reader = stages.Stage("probe", "probe.py", "probe", reads=("base.seed", "synthesize.image_size"))
    monkeypatch.setitem(stages.STAGES, "probe", reader)
    probe_repo()
    sections = config.load_params(in_tmp / "params.yaml")
    declared = runner.notebook_parameters(reader.source)
    with pytest.raises(config.ConfigError, match=r"reads 'synthesize.image_size'.*'image_size'"):
        runner.stage_parameters(reader, sections, declared)
    declared["image_size"] = {"name": "image_size"}
    parameters = runner.stage_parameters(reader, sections, declared)
    assert parameters["image_size"] == sections["synthesize"].image_size
    assert parameters["seed"] == sections["base"].seed
    assert parameters["sizes"] == [2, 3]


SAVES_THEN_FAILS = textwrap.dedent(
    '''
    # %% tags=["parameters"]
    seed = 0
    sizes = [1]
    options = {"a": 1}
    fail = False

    # %%
    import pathlib
    from tests.mmllm_helpers import tiny_mmllm
    from tinyemo.mmllm import artifact
    model, _ = tiny_mmllm()
    config = {"llm": "tiny-random-llama", "vision_tower": "tiny-random-cnn",
              "connector": "mlp2x_gelu", "n_image_tokens": 4, "lora": None}
    artifact.save_mmllm(pathlib.Path("models/probe/trained"), model, config)  # finished
    half = pathlib.Path("models/probe/trained/reference")  # weights without mmllm.json
    half.mkdir()
    (half / artifact.WEIGHTS_FILE).write_bytes(b"partial")
    pathlib.Path("models/probe/scratch.txt").write_text("not a model")
    pathlib.Path("models/mmllm/checkpoints/probe").mkdir(parents=True, exist_ok=True)
    assert not fail, "evaluation failed"
    '''
)


@pytest.fixture
def saving_probe(probe_repo, in_tmp):
    (in_tmp / "notebooks" / "probe.py").write_text(SAVES_THEN_FAILS)
    (in_tmp / "tests").symlink_to(config.Path(__file__).parent)  # the kernel imports tests.*
    (in_tmp / "dvc.yaml").write_text(
        "stages:\n  probe:\n    cmd: tinyemo stage probe\n    outs:\n      - models/probe\n")
    return probe_repo


def test_a_failure_after_training_keeps_the_finished_model_and_says_how_to_rerun(saving_probe, in_tmp):
    """The stage's declared output is removed except the finished MM-LLM in it (its
    mmllm.json written last); a folder of weights without mmllm.json is no finished model."""
    from tinyemo.mmllm import artifact

    saving_probe(fail=True)
    with pytest.raises(runner.StageError) as err:
        runner.run("probe")
    message = str(err.value)
    assert "evaluation failed" in message and "models/probe/trained" in message
    assert "tinyemo stage probe" in message and "dvc repro probe" in message
    assert artifact.finished(in_tmp / "models/probe/trained") is not None
    assert not (in_tmp / "models/probe/trained/reference").exists()
    assert not (in_tmp / "models/probe/scratch.txt").exists()
    assert (in_tmp / "models/mmllm/checkpoints/probe").is_dir()  # the resumable work stays
    artifact.load_mmllm(in_tmp / "models/probe/trained", device="cpu")  # and it loads

    saving_probe(fail=False)
    runner.run("probe")  # a stage that succeeds drops its resumable work
    assert not (in_tmp / "models/mmllm/checkpoints").exists()
