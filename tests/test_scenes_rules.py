import dataclasses

import numpy as np
import pytest

from tinyemo.scenes import catalogue, rules
from tinyemo.scenes.graph import Scene, SceneObject, with_attribute
from tinyemo.scenes.sampling import PRIMARY_KINDS, sample_scene
from tinyemo.taxonomy import MIKELS8

ATTRS = {"frame_color": "white", "corner_mark": "circle"}


def scene_of(*objects, palette="sunny", light="day", weather="clear"):
    return Scene(objects=tuple(objects), palette=palette, light=light, weather=weather, attributes=dict(ATTRS))


def obj(kind, size=0.2, colour=None):
    return SceneObject(kind, 0.5, 0.7, size, colour or catalogue.object_kind(kind).colours[0])


@pytest.mark.parametrize("emotion", MIKELS8)
def test_every_emotion_is_reachable_from_its_documented_cues(emotion):
    palette = next(p for p, item in catalogue.PALETTES.items() if emotion in item.cues and max(item.cues, key=item.cues.get) == emotion)
    for kind in PRIMARY_KINDS[emotion]:
        big = catalogue.object_kind(kind).size_range[1]
        scene = scene_of(obj(kind, big), obj(kind, big), palette=palette, light="dusk", weather="clear")
        assert rules.rule_label(scene) == emotion, (kind, rules.rule_scores(scene))


def test_documented_examples():
    assert rules.rule_label(scene_of(obj("spider"), palette="midnight", light="night")) == "fear"
    assert rules.rule_label(scene_of(obj("rot"), palette="sickly")) == "disgust"
    assert rules.rule_label(scene_of(obj("tombstone"), obj("candle"), palette="ashen", weather="rain")) == "sadness"
    assert rules.rule_label(scene_of(obj("fire"), obj("broken_glass"), palette="ember")) == "anger"
    assert rules.rule_label(scene_of(obj("balloon"), obj("confetti", 0.5), palette="candy")) == "amusement"
    assert rules.rule_label(scene_of(obj("fireworks"), obj("gift"), palette="neon")) == "excitement"
    assert rules.rule_label(scene_of(obj("flower"), obj("flower"), palette="pastel")) == "contentment"


def test_awe_grows_with_size():
    small, big = obj("mountain", 0.25), obj("mountain", 0.75)
    assert rules.object_weight(big, "awe") > 2.0 > rules.object_weight(small, "awe")
    # one big mountain beats a flower on a neutral-ish palette; a small one does not
    assert rules.rule_label(scene_of(big, obj("flower"), palette="ashen", light="day")) == "awe"
    assert rules.rule_label(scene_of(small, obj("flower"), palette="ashen", light="day")) != "awe"


def test_ties_go_to_the_first_emotion_in_mikels_order():
    scene = scene_of(obj("heart"), palette="ashen", light="night", weather="clear")
    scores = rules.rule_scores(scene)  # heart: contentment 1.5; ashen palette: sadness 1.5
    assert scores["contentment"] == scores["sadness"] == pytest.approx(1.5)
    assert rules.rule_label(scene) == "contentment"


def test_rules_are_deterministic_and_ignore_attributes():
    rng = np.random.default_rng(5)
    for _ in range(200):
        scene = sample_scene(rng)
        label = rules.rule_label(scene)
        assert rules.rule_label(Scene.from_dict(scene.to_dict())) == label
        for attribute, values in catalogue.ATTRIBUTES.items():
            for value in values:
                assert rules.rule_label(with_attribute(scene, attribute, value)) == label


def test_key_elements_are_the_supporting_objects_and_colours():
    scene = scene_of(obj("spider", colour="black"), obj("tree"), obj("balloon"), palette="midnight")
    objects, colours = rules.key_elements(scene, "fear")
    assert objects == ["spider"]
    assert colours[0] == "black" and {"purple"} <= set(colours)
    assert rules.key_elements(scene_of(obj("tree")), "fear") == ([], [])


def test_rules_table_lists_every_cue():
    table = rules.rules_table()
    n_cues = sum(len(k.cues) for k in catalogue.OBJECT_KINDS.values()) + sum(
        len(x.cues) for t in (catalogue.PALETTES, catalogue.LIGHTS, catalogue.WEATHERS) for x in t.values())
    assert len(table) == n_cues
    assert ("awe", "object", "mountain", "2 x size/0.45") in table
    assert {row[0] for row in table} == set(MIKELS8)


def test_catalogue_is_consistent():
    for kind in catalogue.OBJECT_KINDS.values():
        assert set(kind.cues) <= set(MIKELS8)
        for colour in kind.colours:
            catalogue.rgb(colour)
    for attribute, values in catalogue.ATTRIBUTES.items():
        assert len(values) >= 3 and len(set(values)) == len(values)
    with pytest.raises(catalogue.UnknownSceneNameError, match="unknown object kind 'dragon'; valid: balloon"):
        scene_of(SceneObject("dragon", 0.5, 0.5, 0.1, "red"))
    with pytest.raises(catalogue.UnknownSceneNameError, match="unknown palette 'beige'"):
        scene_of(palette="beige")
    with pytest.raises(catalogue.UnknownSceneNameError, match="needs exactly the attributes"):
        dataclasses.replace(scene_of(), attributes={"frame_color": "white"})
