"""`tinyemo explain` before it loads any model: unreadable model files are named, and the
decoding cap defaults to the one the finetune stage evaluated with."""
import json
import shutil

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.conftest import REPO
from tests.image_helpers import huge_png
from tinyemo import config
from tinyemo.cli import explain, main
from tinyemo.mmllm.artifact import CONFIG_FILE, WEIGHTS_FILE


@pytest.fixture
def model_dir(in_tmp):
    Image.new("RGB", (32, 32), (10, 200, 30)).save(in_tmp / "img.png")
    folder = in_tmp / "finetune"
    folder.mkdir()
    (folder / CONFIG_FILE).write_text(json.dumps({"llm": "tiny-random-llama"}))
    save_file({"connector.w": torch.randn(64, 64)}, str(folder / WEIGHTS_FILE))
    return folder


def test_a_broken_mmllm_json_is_named(model_dir, capsys):
    (model_dir / CONFIG_FILE).write_text('{"llm": "tiny-random-llama",')
    assert main(["explain", "img.png", "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert f"error: {model_dir / CONFIG_FILE} is not valid JSON" in err and "dvc repro finetune" in err


def test_truncated_weights_are_named(model_dir, capsys):
    whole = (model_dir / WEIGHTS_FILE).read_bytes()
    (model_dir / WEIGHTS_FILE).write_bytes(whole[: len(whole) // 2])
    assert main(["explain", "img.png", "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert f"error: {model_dir / WEIGHTS_FILE} is unreadable, truncated or corrupt" in err


def test_a_decompression_bomb_is_a_clear_error(model_dir, capsys, in_tmp):
    huge_png(in_tmp / "huge.png")
    assert main(["explain", "huge.png", "--model", str(model_dir)]) == 2
    assert "huge.png has more pixels than PIL decodes safely" in capsys.readouterr().err


def test_the_decoding_cap_defaults_to_the_finetune_stages(in_tmp):
    from tinyemo.mmllm.params import FinetuneParams

    assert explain.default_max_new_tokens() == FinetuneParams.model_fields["max_new_tokens"].default  # no params.yaml
    shutil.copytree(REPO / "profiles", in_tmp / "profiles")
    for profile in config.PROFILE_NAMES:
        config.write_params(profile)
        assert explain.default_max_new_tokens() == config.render_profile(profile)["finetune"]["max_new_tokens"]


def test_help_names_the_default_source(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "default: finetune.max_new_tokens of params.yaml" in out and "128" not in out
