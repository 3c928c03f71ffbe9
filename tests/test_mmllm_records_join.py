"""The paper's MM-LLM records (params `records_file`, `records_features`): LLaVA-format JSON
over WEBEmo training images, joined to the patch grids `encode` wrote for them."""
import json
import random
import re

import pytest
import torch

from tests.conftest import REPO
from tests.dataset_fixtures import build
from tests.mmllm_helpers import N_IMAGE_TOKENS, tiny_mmllm
from tinyemo import config
from tinyemo.datasets import dataset
from tinyemo.encode import EncodeSettings, encode_dataset
from tinyemo.errors import TinyEmoError
from tinyemo.feature_store import FeatureSet
from tinyemo.mmllm import stage_runs
from tinyemo.mmllm.data import feature_key
from tinyemo.mmllm.params import FinetuneParams, PretrainParams
from tinyemo.mmllm.prompts import IGNORE
from tinyemo.models.vision import load_vision_tower

UPSTREAM = "/root/TFM_CristianGutierrez/data/partitioned_WEBEmo_fine"  # how upstream's records name images


@pytest.fixture(scope="module")
def webemo(tmp_path_factory):
    """(the feature folder of a tiny WEBEmo's train split, with patch grids; its FeatureSet)."""
    root = tmp_path_factory.mktemp("webemo")
    build("webemo", root / "raw")
    records, _ = dataset("webemo").records(root / "raw")
    torch.manual_seed(0)
    settings = EncodeSettings(batch_size=16, shard_size=16, patches=True, device="cpu")
    encode_dataset(load_vision_tower("tiny-random-cnn"), "webemo", records,
                   dataset("webemo").label_names, settings, root / "features")
    folder = root / "features" / "webemo" / "train"
    return folder, FeatureSet.load(folder)


def llava(ids: list[str], seed: int = 0) -> list[dict]:
    """A record per id, in a seeded order; record k's answer names its number k."""
    order = list(range(len(ids)))
    random.Random(seed).shuffle(order)
    return [{"id": f"r{k}", "image": f"{UPSTREAM}/{ids[k]}.jpg", "conversations": [
        {"from": "human", "value": "<image>\nDescribe the image."},
        {"from": "gpt", "value": f"Picture {k} here."}]} for k in order]


def write(path, items):
    path.write_text(json.dumps(items, indent=1))
    return path


def params(kind: str, records_file, features_folder, **more):
    schema = PretrainParams if kind == "pretrain" else FinetuneParams
    return schema(lr=1e-3, max_length=64, system_prompt="", records_file=str(records_file),
                  records_features=str(features_folder), **more)


def answer_number(example, tokenizer) -> int:
    answer = tokenizer.decode([t for t, label in zip(example.input_ids, example.labels) if label != IGNORE])
    return int(re.search(r"Picture (\d+)", answer).group(1))


def test_an_image_joins_the_longest_trailing_part_of_its_path_that_is_a_feature_id():
    ids = {"train/joy/12", "12", "000042", "test/joy/12"}
    assert feature_key(f"{UPSTREAM}/train/joy/12.jpg", ids) == "train/joy/12"
    assert feature_key("C:\\data\\test\\joy\\12.jpeg", ids) == "test/joy/12"
    assert feature_key("val/joy/12.jpg", ids) == "12"  # EmoScenes' rule: the file name
    assert feature_key("train/000042.png", ids) == "000042"
    assert feature_key("train/joy/13.jpg", ids) is None and feature_key("", ids) is None


@pytest.mark.parametrize("kind", ["pretrain", "finetune"])
def test_each_record_reads_the_patch_grid_of_its_own_image(webemo, tmp_path, kind):
    folder, features = webemo
    ids = features.ids
    file = write(tmp_path / "records.json", llava(ids))
    _, tokenizer = tiny_mmllm()
    p = params(kind, file, folder)
    loaded = stage_runs.training_features(kind, p)
    assert loaded.ids == ids and torch.equal(loaded.patches[[0, 5]], features.patches[[0, 5]])
    examples = stage_runs.examples_of(kind, "train", tokenizer, loaded, None, 0, N_IMAGE_TOKENS, p)
    assert len(examples) == len(ids) == 50
    numbers = [answer_number(examples[i], tokenizer) for i in range(len(examples))]
    assert sorted(numbers) == list(range(50)) and numbers != sorted(numbers)  # the file's order
    for i, k in enumerate(numbers):
        assert ids[examples[i].patch_row] == ids[k]  # "train/<emotion folder>/<n>"

    subset = stage_runs.examples_of(kind, "train", tokenizer, loaded, 12, 3, N_IMAGE_TOKENS, p)
    again = stage_runs.examples_of(kind, "train", tokenizer, loaded, 12, 3, N_IMAGE_TOKENS, p)
    other = stage_runs.examples_of(kind, "train", tokenizer, loaded, 12, 4, N_IMAGE_TOKENS, p)
    picked = [answer_number(subset[i], tokenizer) for i in range(len(subset))]
    assert len(subset) == 12 and len(set(picked)) == 12
    assert picked == [answer_number(again[i], tokenizer) for i in range(12)]
    assert picked != [answer_number(other[i], tokenizer) for i in range(12)]
    assert all(ids[subset[i].patch_row] == ids[k] for i, k in enumerate(picked))


def test_records_without_features_are_counted_and_left_out(webemo, tmp_path, capsys):
    folder, features = webemo
    items = llava(features.ids[:10])
    items.insert(4, {**items[0], "id": "gone", "image": f"{UPSTREAM}/train/joy/unencoded.jpg"})
    items.append({**items[0], "id": "val", "image": "validation/joy/0.jpg"})  # not a train image
    file = write(tmp_path / "records.json", items)
    _, tokenizer = tiny_mmllm()
    examples = stage_runs.examples_of("pretrain", "train", tokenizer, features, None, 0,
                                   N_IMAGE_TOKENS, params("pretrain", file, folder))
    assert len(examples) == 10
    assert (examples.joined.n_records, examples.joined.missing) == (12, 2)
    assert "2 of 12 records" in capsys.readouterr().out


def test_records_that_join_nothing_name_both_files_and_an_id_of_each(webemo, tmp_path):
    folder, features = webemo
    items = [{**r, "image": f"/data/other/{i}_x.jpg"} for i, r in enumerate(llava(features.ids[:5]))]
    file = write(tmp_path / "records.json", items)
    _, tokenizer = tiny_mmllm()
    with pytest.raises(TinyEmoError) as err:
        stage_runs.examples_of("finetune", "train", tokenizer, features, None, 0, N_IMAGE_TOKENS,
                            params("finetune", file, folder))
    message = str(err.value)
    for part in ("finetune.records_file", str(file), str(folder), items[0]["image"], features.ids[0]):
        assert part in message


def test_a_downloaded_folder_with_one_json_is_read_and_bad_paths_name_the_parameter(webemo, tmp_path):
    folder, features = webemo
    download = tmp_path / "tinyemo-pretrain-525k"
    download.mkdir()
    write(download / "pretrain.json", llava(features.ids[:6]))
    (download / "README.md").write_text("card")
    _, tokenizer = tiny_mmllm()
    examples = stage_runs.examples_of("pretrain", "train", tokenizer, features, None, 0,
                                   N_IMAGE_TOKENS, params("pretrain", download, folder))
    assert len(examples) == 6

    write(download / "other.json", [])
    cases = [("pretrain", download, folder, "pretrain.records_file: the folder .* holds 2 JSON"),
             ("finetune", tmp_path / "absent.json", folder, "finetune.records_file: .*absent.json does not exist"),
             ("pretrain", download / "pretrain.json", tmp_path / "nofeatures",
              "pretrain.records_features: .*nofeatures does not exist")]
    (tmp_path / "broken.json").write_text('[{"id": 1}, {"id": ')
    cases.append(("finetune", tmp_path / "broken.json", folder, "finetune.records_file: .*broken.json holds malformed JSON"))
    for kind, file, features_folder, message in cases:
        p = params(kind, file, features_folder)
        with pytest.raises(TinyEmoError, match=message):
            stage_runs.examples_of(kind, "train", tokenizer, stage_runs.training_features(kind, p), None,
                                0, N_IMAGE_TOKENS, p)


@pytest.mark.parametrize("kind, change, message", [
    ("pretrain", {"records_features": None}, "records_file and records_features go together"),
    ("pretrain", {"connector": "word_grounded"}, "connector: word_grounded"),
    ("pretrain", {"records": "captions", "reference_connector": "linear"}, "records: captions, reference_connector: linear"),
    ("finetune", {"caption_records": None}, "caption_records: None"),
])
def test_records_with_settings_that_read_emoscenes_are_refused(kind, change, message):
    values = {"lr": 1.0e-3, "records_file": "data/raw/r.json", "records_features": "data/features/webemo/train",
              **change}
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.validate_section(kind, values)


def test_the_paper_profile_reads_the_paper_records_and_the_others_emoscenes():
    paper = config.validate(config.render_profile("paper", REPO / "profiles"))
    assert paper["pretrain"].records_file == "data/raw/tinyemo-pretrain-525k"
    assert paper["finetune"].records_file == "data/raw/tinyemo-emoreason-175k"
    assert paper["pretrain"].records_features == paper["finetune"].records_features == "data/features/webemo/train"
    assert "webemo" in paper["encode"].patches
    for name in ("default", "smoke"):
        sections = config.validate(config.render_profile(name, REPO / "profiles"))
        assert sections["pretrain"].records_file is sections["finetune"].records_file is None


def test_pretrain_and_finetune_train_on_the_records(webemo, tmp_path):
    folder, features = webemo
    file = write(tmp_path / "records.json", llava(features.ids[:16]))
    base = config.validate_section("base", {"profile": "default", "llm": "tiny-random-llama",
                                            "vision_tower": "tiny-random-cnn"})
    pretrain = params("pretrain", file, folder, batch_size=4, checkpoint_every=0, n_records=8)
    run = stage_runs.pretrain_run(base, pretrain, tmp_path / "mmllm" / "pretrain")
    assert run.n_records == 8 and run.result.steps == 2 and run.result.samples == 8
    assert run.model.n_patches == features.patches.shape[1]
    finetune = params("finetune", file, folder, batch_size=4, checkpoint_every=0, n_records=4)
    tuned = stage_runs.finetune_run(base, finetune, tmp_path / "mmllm" / "pretrain", tmp_path / "mmllm" / "finetune")
    assert tuned.n_records == 4 and tuned.result.steps == 1
    assert (tmp_path / "mmllm" / "finetune").is_dir()
