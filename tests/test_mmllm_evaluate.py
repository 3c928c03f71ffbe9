"""Reasoning metrics on hand-made answers, and the prompts of the two inference modes."""
import pytest

from tinyemo.mmllm import evaluate, infer
from tinyemo.taxonomy import MIKELS8


def test_objects_are_found_by_noun_plural_and_head():
    text = "Two black spiders crawl near the wilted flowers, and a swarm of flies hums. The flies!"
    assert evaluate.mentioned_objects(text) == {"spider", "wilted_flower", "flies"}
    assert evaluate.mentioned_objects("The sunny colours feel bright.") == set()
    assert evaluate.mentioned_objects("A field of stars and some stars.") == {"starfield"}


def test_a_grounded_reasoning_scores_well():
    text = ("I feel scared. The black spiders in the foreground are menacing, and the skull "
            "adds to the dread; the charcoal tones deepen the fear.\n\nEmotion: fear")
    score = evaluate.score_reasoning(text, "fear", present=["spider", "skull", "tree"],
                                     key_objects=["spider", "skull"], key_colours=["black", "charcoal"])
    assert score.names_emotion
    assert score.key_object_recall == 1.0 and score.key_colour_recall == 1.0
    assert score.hallucinated == set()


def test_hallucinations_and_missing_key_objects_are_counted():
    text = "A red balloon and a wrapped gift make this fun.\n\nEmotion: fear"
    score = evaluate.score_reasoning(text, "fear", present=["spider", "gift"],
                                     key_objects=["spider"], key_colours=["black"])
    assert not score.names_emotion  # the label line alone does not count
    assert score.mentioned == {"balloon", "gift"} and score.hallucinated == {"balloon"}
    assert score.key_object_recall == 0.0 and score.key_colour_recall == 0.0
    summary = evaluate.summarize_reasonings([score, evaluate.score_reasoning(
        "Spiders, fear.", "fear", ["spider"], ["spider"], [])])
    assert summary["hallucination_rate"] == pytest.approx(1 / 3)
    assert summary["reasoning_names_correct_emotion"] == 0.5
    assert summary["key_object_recall"] == 0.5
    assert summary["key_colour_recall"] == 0.0  # the second scene has no key colours


def test_rouge_l_and_label_accuracy():
    assert evaluate.rouge_l(["the dark spiders frighten me"], ["the dark spiders frighten me"]) == 1.0
    assert 0 < evaluate.rouge_l(["dark spiders"], ["the dark spiders frighten me"]) < 1
    assert evaluate.label_accuracy(["fear", None, "awe"], ["fear", "awe", "anger"]) == pytest.approx(1 / 3)


def test_detached_and_generative_prompts():
    detached = infer.detached_prompt("fear", ["fear", "awe", "anger"])
    assert detached.startswith("<image>\n") and "the correct label is fear" in detached
    generative = infer.generative_prompt(MIKELS8)
    assert "Important" not in generative and ", ".join(MIKELS8) in generative
    answers = ["Spooky.\n\nEmotion: fear", "No label here", "Emotion: joyfulness"]
    assert infer.generative_labels(answers, MIKELS8) == ["fear", None, None]
