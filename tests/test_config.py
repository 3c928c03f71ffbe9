import copy

import pytest

from tinyemo import config
from tinyemo.models import registry


def test_every_profile_renders_and_validates():
    for name in config.PROFILE_NAMES:
        tree = config.render_profile(name)
        assert tree["base"]["profile"] == name


def test_deep_merge_keeps_nested_defaults():
    merged = config.deep_merge({"a": {"x": 1, "y": 2}, "b": [1]}, {"a": {"y": 3}, "b": [2]})
    assert merged == {"a": {"x": 1, "y": 3}, "b": [2]}


def test_params_yaml_is_the_rendered_default_profile():
    assert config.load_params() .keys() == config.validate(config.render_profile("default")).keys()
    rendered = {k: v.model_dump() for k, v in config.validate(config.render_profile("default")).items()}
    current = {k: v.model_dump() for k, v in config.load_params().items()}
    assert current == rendered, "params.yaml is stale: run `tinyemo profile default`"


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("base", "llm"), "gpt-9", "unknown LLM 'gpt-9'; valid names: openelm-270m-instruct"),
        (("base", "vision_tower"), "vit", "unknown vision tower 'vit'; valid names:"),
        (("synthesize", "n_trian"), 5, "synthesize.n_trian: unknown key (misspelled?)"),
        (("synthesize", "n_train"), "many", "synthesize.n_train: Input should be a valid integer"),
        (("synthesize", "label_noise"), 0.9, "synthesize.label_noise: Input should be less than"),
    ],
)
def test_malformed_parameters_name_the_problem(path, value, message):
    tree = copy.deepcopy(config.render_profile("default"))
    tree[path[0]][path[1]] = value
    with pytest.raises(config.ConfigError, match=None) as err:
        config.validate(tree)
    assert message in str(err.value)


def test_unknown_section_and_profile_are_refused():
    tree = config.render_profile("default")
    with pytest.raises(config.ConfigError, match="unknown section 'trian'"):
        config.validate({**tree, "trian": {}})
    with pytest.raises(config.ConfigError, match="valid profiles: default, smoke, paper"):
        config.render_profile("fast")


def test_registry_looks_names_up_exactly():
    assert registry.llm_spec("smollm2-135m-instruct").embed_dim == 576
    with pytest.raises(registry.UnknownModelError, match="valid names"):
        registry.llm_spec("smollm2")  # a prefix is not a name
    with pytest.raises(registry.UnknownModelError):
        registry.vision_tower_spec("clip")


def test_cli_profile_writes_params(in_tmp):
    import shutil

    from tests.conftest import REPO
    from tinyemo.cli import main

    shutil.copytree(REPO / "profiles", in_tmp / "profiles")
    assert main(["profile", "smoke"]) == 0
    assert config.load_params(in_tmp / "params.yaml")["base"].llm == "tiny-random-llama"
    with pytest.raises(SystemExit) as exit_:
        main(["profile", "nope"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("section, key, value", [
    ("synthesize", "n_train", "1600"),  # a quoted number
    ("base", "threads", True),  # YAML `threads: yes`
    ("finetune", "lr", "1e-3"),  # PyYAML reads 1e-3 (no dot) as a string
])
def test_a_value_of_the_wrong_type_is_refused_not_cast(section, key, value):
    tree = config.render_profile("default")
    tree[section][key] = value
    with pytest.raises(config.ConfigError, match=f"{section}.{key}: .*write a plain number"):
        config.validate(tree)


def test_yaml_floats_with_a_dot_and_ints_for_floats_still_validate(in_tmp):
    text = "base: {profile: default, vision_tower: tiny-random-cnn, llm: tiny-random-llama, threads: 2}\n" \
           "synthesize: {n_train: 16, n_val: 8, n_test: 8, label_noise: 0, planted_biases: []}\n" \
           "finetune: {lr: 1.0e-3}\n"
    (in_tmp / "params.yaml").write_text(text)
    sections = config.load_params(in_tmp / "params.yaml")
    assert sections["finetune"].lr == 0.001 and sections["synthesize"].label_noise == 0.0
    assert sections["base"].threads == 2 and sections["synthesize"].n_train == 16


@pytest.mark.parametrize("profile", config.PROFILE_NAMES)
def test_every_profile_validates_under_strict_types(profile):
    tree = config.render_profile(profile)
    assert set(config.validate(tree)) == set(tree)
