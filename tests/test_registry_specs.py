"""Vision-tower specs carry the open_clip architecture and pretrained tag as fields."""
import dataclasses

import pytest

from tinyemo.models import registry
from tinyemo.models.registry import VisionTowerSpec
from tinyemo.models.vision import clip

CLIP_TOWERS = [spec for spec in registry.VISION_TOWERS.values() if spec.family == "open_clip"]


def test_the_paper_towers_are_open_clip_towers():
    assert {spec.name for spec in CLIP_TOWERS} == {"clip-vit-l-14", "clip-vit-b-16"}


@pytest.mark.parametrize("spec", CLIP_TOWERS, ids=lambda s: s.name)
def test_each_clip_spec_names_an_architecture_and_tag_open_clip_knows(spec):
    import open_clip

    assert spec.architecture in open_clip.list_models()
    assert spec.pretrained in open_clip.list_pretrained_tags_by_model(spec.architecture)


def test_an_open_clip_spec_without_architecture_is_refused():
    with pytest.raises(ValueError, match="needs its `architecture`"):
        VisionTowerSpec("clip-x", "open_clip", 8, 8, 32, source="open_clip ViT-B-16")


def test_open_clip_fields_on_another_family_are_refused():
    with pytest.raises(ValueError, match="open_clip fields"):
        VisionTowerSpec("cnn-x", "tiny-random", 8, 8, 32, source="config", architecture="ViT-B-16")


class Built(Exception):
    pass


def test_the_clip_loader_reads_the_architecture_field_not_the_source_text(monkeypatch):
    import open_clip

    seen = {}

    def record(architecture, pretrained=None, **kwargs):
        seen.update(architecture=architecture, pretrained=pretrained)
        raise Built

    monkeypatch.setattr(open_clip, "create_model_and_transforms", record)
    spec = dataclasses.replace(registry.vision_tower_spec("clip-vit-b-16"), source="weights from elsewhere")
    with pytest.raises(Built):
        clip.load(spec)
    assert seen == {"architecture": "ViT-B-16", "pretrained": "openai"}
    assert clip.prepare(spec, None)["arch"] == "ViT-B-16"
