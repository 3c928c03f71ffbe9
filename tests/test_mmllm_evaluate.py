"""Reasoning metrics on hand-made answers, and the prompts of the two inference modes."""
from types import SimpleNamespace

import pytest
import torch

from tinyemo.mmllm import evaluate, infer
from tinyemo.scenes import catalogue
from tinyemo.taxonomy import MIKELS8


def test_objects_are_found_by_noun_plural_and_head():
    text = "Two black spiders crawl near the wilted flowers, and a swarm of flies hums. The flies!"
    assert evaluate.mentioned_objects(text) == {"spider", "wilted_flower", "flies"}
    assert evaluate.mentioned_objects("The sunny colours feel bright.") == set()
    assert evaluate.mentioned_objects("A field of stars and some stars.") == {"starfield"}


def test_the_viewers_own_heart_is_not_an_object():
    text = "The red heart floats high. It makes my heart skip a beat, and our hearts sink."
    assert evaluate.mentioned_objects(text) == {"heart"}
    assert evaluate.mentioned_objects("It makes my heart skip a beat.") == set()
    assert evaluate.mentioned_objects("Your heart sinks at the spider.") == {"spider"}


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


def scene(index: int, kind: str, label: str = "fear"):
    return SimpleNamespace(id=f"{index:03d}", label=label, key_objects=[kind], key_colours=[],
                           scene=SimpleNamespace(objects=(SimpleNamespace(kind=kind),)))


KINDS = ["spider", "balloon", "skull", "gift"]


def test_assess_scores_hand_made_scenes_and_the_shuffled_image(monkeypatch):
    """A model that names exactly the object its patches show: full recall and no
    hallucination with the true image; with the next image's patches, neither."""
    nouns = {k: catalogue.OBJECT_KINDS[k].noun for k in KINDS}

    def reads_its_image(model, tokenizer, prompts, patches, *args, **kwargs):
        return [f"I feel fear: a {nouns[KINDS[int(p[0, 0])]]} is there.\n\nEmotion: fear"
                for p in patches]

    monkeypatch.setattr(infer, "generate", reads_its_image)
    scenes = [scene(i, kind) for i, kind in enumerate(KINDS)]
    patches = torch.arange(4.0).reshape(4, 1, 1).expand(4, 2, 3)
    references = [{"conversations": [{"value": "<image>\nwhy?"}, {"value": f"a {nouns[k]}"}]}
                  for k in KINDS]
    metrics, rows = evaluate.assess(None, None, scenes, patches, references, MIKELS8, 8, 2)
    assert metrics["key_object_recall"] == 1.0 and metrics["hallucination_rate"] == 0.0
    assert metrics["key_object_recall_shuffled"] == 0.0
    assert metrics["hallucination_rate_shuffled"] == 1.0
    assert metrics["reasoning_names_correct_emotion"] == 1.0
    assert metrics["generative_label_accuracy"] == 1.0 and metrics["generative_key_object_recall"] == 1.0
    assert [r["mentioned"] for r in rows] == [[k] for k in KINDS]


def test_object_token_ids_cover_object_names_only():
    class Words:  # one id per whitespace-separated word, numbered as first seen
        vocabulary: dict = {}

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [self.vocabulary.setdefault(w, len(self.vocabulary))
                                  for w in text.split()]}

    words = Words()
    ids = evaluate.object_token_ids(words)
    assert {words.vocabulary["spiders"], words.vocabulary["flies"]} <= ids
    assert "of" not in words.vocabulary  # "swarm of flies" contributes its head only


class ReadsRowMarkers(torch.nn.Module):
    """Predicts answer token 1 exactly when the patches are the example's own image (the
    first answer label names the image's row), token 0 otherwise."""

    def forward(self, input_ids, patches, attention_mask=None, labels=None):
        targets = labels[:, 1:][labels[:, 1:] != -100]
        own = (patches[:, 0, 0].long() == input_ids[:, 0]).repeat_interleave(
            (labels[:, 1:] != -100).sum(dim=1))
        logits = torch.stack([torch.where(own, -5.0, 5.0), torch.where(own, 5.0, -5.0)], dim=1)
        return SimpleNamespace(loss=None, logits=logits, targets=targets)


def test_image_reliance_is_positive_for_a_model_that_reads_its_image():
    from tinyemo.mmllm.data import Example
    from tinyemo.mmllm.stage_runs import image_reliance

    examples = [Example([row, 7, 7], [-100, 1, 1], row) for row in range(4)]
    patches = torch.arange(4.0).reshape(4, 1, 1)
    result = image_reliance(ReadsRowMarkers(), examples, patches, pad_id=0, batch_size=3,
                            focus_ids={1})
    assert result["loss_own_image"] < 0.01 < 9 < result["loss_other_image"]
    assert result["image_reliance"] == pytest.approx(result["loss_other_image"] - result["loss_own_image"])
    assert result["image_reliance"] > 9 and result["image_reliance_object_words"] > 9
    assert result["object_word_tokens"] == 8


def test_test_images_join_keeps_scene_feature_and_record_aligned():
    from tinyemo.mmllm.stage_runs import join_test_images

    ids = [f"{i:03d}" for i in range(6)]
    features = SimpleNamespace(ids=ids, pooled=torch.arange(6.0)[:, None],
                               patches=torch.arange(6.0).reshape(6, 1, 1))
    scenes = [scene(i, "spider") for i in range(6)]
    records = [{"image": f"test/{i}.png", "id": i} for i in reversed(ids)]  # another order
    test = join_test_images(features, scenes, records, 4, seed=0)
    assert len(test.scenes) == 4
    for s, ref, pooled, grid in zip(test.scenes, test.references, test.pooled, test.patches):
        assert s.id == ref["id"] == f"{int(pooled):03d}" == f"{int(grid[0, 0]):03d}"
    with pytest.raises(ValueError, match="disagree"):
        join_test_images(features, scenes[1:] + scenes[:1], records, 4, seed=0)


def test_teacher_ceiling_scores_the_reference_answers_against_their_scenes():
    scenes = [scene(0, "spider", "fear"), scene(1, "mountain", "awe")]
    references = [
        {"conversations": [{"value": "<image>\nq"}, {"value": "A spider makes this fear.\n\nEmotion: fear"}]},
        {"conversations": [{"value": "<image>\nq"}, {"value": "A spider, nothing else.\n\nEmotion: awe"}]},
    ]
    ceiling = evaluate.teacher_ceiling(scenes, references)
    assert ceiling["reasoning_names_correct_emotion"] == 0.5  # the label line does not count
    assert ceiling["key_object_recall"] == 0.5  # the second answer misses its mountain
    assert ceiling["hallucination_rate"] == 0.5  # and names a spider that is not there


def test_key_objects_in_words_reads_single_words_and_heads_of_longer_names():
    scenes = [SimpleNamespace(key_objects=["broken_glass", "spider"]),
              SimpleNamespace(key_objects=["starfield"]), SimpleNamespace(key_objects=[])]
    words = [["glass", "red", "night"], ["stars", "gold"], ["spider"]]
    assert evaluate.key_objects_in_words(words, scenes) == pytest.approx((0.5 + 1.0) / 2)
    assert evaluate.key_objects_in_words([["spiders", "glass"], ["field"]], scenes[:2]) == 0.5
