import dataclasses

import numpy as np
import pytest

from tinyemo.scenes import catalogue
from tinyemo.scenes.graph import Scene, SceneObject, with_attribute
from tinyemo.scenes.render import attribute_regions, render_scene
from tinyemo.scenes.sampling import sample_scene

SIZE = 96


@pytest.fixture(scope="module")
def scenes():
    rng = np.random.default_rng(11)
    return [sample_scene(rng) for _ in range(12)]


def pixels(scene, size=SIZE):
    return np.asarray(render_scene(scene, size))


def test_rendering_is_deterministic_and_sized(scenes):
    for scene in scenes:
        image = render_scene(scene, SIZE)
        assert image.size == (SIZE, SIZE) and image.mode == "RGB"
        assert np.array_equal(pixels(scene), pixels(Scene.from_dict(scene.to_dict())))
    assert not np.array_equal(pixels(scenes[0]), pixels(scenes[1]))


def test_every_object_kind_draws_something():
    base = Scene(objects=(), palette="pastel", light="day", weather="clear",
                 attributes={"frame_color": "white", "corner_mark": "circle"})
    empty = pixels(base)
    for kind in catalogue.OBJECT_KINDS.values():
        scene = Scene(objects=(SceneObject(kind.name, 0.5, 0.3 if kind.zone == "sky" else 0.75,
                                           kind.size_range[1], kind.colours[0]),),
                      palette="pastel", light="day", weather="clear", attributes=base.attributes)
        changed = (pixels(scene) != empty).any(axis=2).mean()
        assert changed > 0.001, kind.name


def test_detail_seed_moves_the_details(scenes):
    rainy = dataclasses.replace(scenes[0], weather="rain")
    moved = dataclasses.replace(rainy, detail_seed=rainy.detail_seed + 1)
    assert not np.array_equal(pixels(rainy), pixels(moved))


@pytest.mark.parametrize("attribute", list(catalogue.ATTRIBUTES))
def test_counterfactual_changes_only_that_attribute_and_its_pixels(scenes, attribute):
    region = attribute_regions(SIZE)[attribute]
    for scene in scenes:
        for value in catalogue.ATTRIBUTES[attribute]:
            if value == scene.attributes[attribute]:
                continue
            other = with_attribute(scene, attribute, value)
            assert other.attributes[attribute] == value
            assert {k: v for k, v in other.to_dict().items() if k != "attributes"} == \
                {k: v for k, v in scene.to_dict().items() if k != "attributes"}
            assert {k: v for k, v in other.attributes.items() if k != attribute} == \
                {k: v for k, v in scene.attributes.items() if k != attribute}
            diff = (pixels(scene) != pixels(other)).any(axis=2)
            assert diff.any(), (attribute, value)
            assert not diff[~region].any(), f"{attribute}={value} changed pixels outside its region"


def test_attribute_regions_are_small_and_disjoint():
    regions = attribute_regions(224)
    assert not (regions["frame_color"] & regions["corner_mark"]).any()
    assert regions["frame_color"].mean() < 0.2 and regions["corner_mark"].mean() < 0.02


def test_counterfactual_rejects_unknown_attribute_or_value(scenes):
    with pytest.raises(catalogue.UnknownSceneNameError, match="unknown attribute 'border'; valid: frame_color, corner_mark"):
        with_attribute(scenes[0], "border", "teal")
    with pytest.raises(catalogue.UnknownSceneNameError, match="unknown value 'pink' of attribute 'frame_color'; valid: white"):
        with_attribute(scenes[0], "frame_color", "pink")
