"""The paper tower writes features in the format of upstream's shipped Emotion6 features.

Upstream's files hold OpenAI CLIP ViT-L/14 `encode_image` outputs: 768-d, fp16, not
L2-normalised (norms about 18-20). Offline the tower is built with random weights, so the
values (and the norms' size) cannot match; what is checked is everything the format fixes:
width, dtype on disk, no normalisation, OpenAI's preprocessing, and the patch grid.
"""
import dataclasses
import os
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from tinyemo import emotion6
from tinyemo.encode import EncodeSettings, SplitEncoder
from tinyemo.feature_store import FeatureSet
from tinyemo.models import registry

pytestmark = pytest.mark.slow


@dataclasses.dataclass(frozen=True)
class Record:
    id: str
    path: Path
    label: str
    split: str = "train"


@pytest.fixture(scope="module")
def paper_tower():
    from tinyemo.models.vision import clip

    torch.manual_seed(0)
    spec = dataclasses.replace(registry.vision_tower_spec("clip-vit-l-14"), pretrained="")  # random weights
    return clip.OpenClipTower(spec)


@pytest.fixture(scope="module")
def shipped():
    if not os.environ.get(emotion6.ENV_VAR):
        pytest.skip("the shared Emotion6 sample is not beside the repository")
    folder = emotion6.split_folders(emotion6.locate_emotion6())["train"]
    return [torch.load(p, weights_only=True) for p in sorted(folder.glob("*/*.pt"))[:50]]


@pytest.fixture(scope="module")
def encoded(paper_tower, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clip")
    records = []
    for i, colour in enumerate([(200, 30, 30), (20, 120, 220)]):
        path = tmp / f"{i}.jpg"
        Image.new("RGB", (320, 240), colour).save(path)
        records.append(Record(f"img{i}", path, "joy"))
    paper = EncodeSettings(batch_size=2, dtype="fp16", device="cpu", patches=True)
    SplitEncoder(paper_tower, records, emotion6.EKMAN6, tmp / "out", paper, {"dataset": "toy"}).run()
    return tmp / "out"


def test_pooled_is_768_wide_and_fp16_on_disk_like_upstream(encoded, shipped):
    assert {tuple(v.shape) for v in shipped} == {(768,)} and {v.dtype for v in shipped} == {torch.float16}
    with safe_open(str(encoded / "shard-00000.safetensors"), framework="pt") as f:
        pooled = f.get_tensor("pooled")
    assert pooled.shape == (2, 768) and pooled.dtype == torch.float16


def test_pooled_is_not_normalised_like_upstream(encoded, shipped):
    shipped_norms = torch.stack([v.float().norm() for v in shipped])
    assert 15 < shipped_norms.min() and shipped_norms.max() < 25  # PROVENANCE.md: about 18-20
    norms = FeatureSet.load(encoded).pooled.norm(dim=1)
    assert ((norms - 1).abs() > 0.1).all()  # encode_image output, not L2-normalised


def test_patch_grid_is_the_penultimate_layers_256_tokens(encoded):
    patches = FeatureSet.load(encoded).patches
    assert patches.shape == (2, 256, 1024) and torch.isfinite(patches[:]).all()


def test_preprocessing_is_openai_clips(paper_tower):
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    normalise = paper_tower.transform.transforms[-1]
    assert tuple(normalise.mean) == OPENAI_DATASET_MEAN and tuple(normalise.std) == OPENAI_DATASET_STD
    pixels = paper_tower.preprocess([Image.new("RGB", (320, 240))])
    assert pixels.shape == (1, 3, 224, 224)  # resize the short side, centre crop
