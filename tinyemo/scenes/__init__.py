"""EmoScenes: a synthetic world of emotional scenes with known truth.

Scene graphs (`graph`) are sampled (`sampling`) from a catalogue of objects, palettes, light
and weather (`catalogue`); explicit rules (`rules`) give each its Mikels-8 emotion; label
noise (`noise`) and planted biases (`planted_bias`) are controlled; `render` draws the image and the
teachers (`teacher`, `llm_teacher`) write LLaVA conversations; `dataset` writes it all and
`records` reads it back.
"""
from tinyemo.scenes.graph import Scene, SceneObject, with_attribute
from tinyemo.scenes.records import (
    MissingDataError, SceneRecord, load_conversations, load_scene_records,
)
from tinyemo.scenes.render import render_scene
from tinyemo.scenes.rules import rule_label
from tinyemo.scenes.sampling import sample_scene
from tinyemo.scenes.teacher import parse_emotion

__all__ = [
    "Scene", "SceneObject", "with_attribute", "MissingDataError", "SceneRecord",
    "load_conversations", "load_scene_records", "render_scene", "rule_label", "sample_scene",
    "parse_emotion",
]
