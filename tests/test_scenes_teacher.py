import random

import numpy as np
import pytest

from tinyemo.scenes import catalogue, rules
from tinyemo.scenes.llm_teacher import LLMTeacher, make_teacher
from tinyemo.scenes.sampling import sample_scene
from tinyemo.scenes.teacher import (
    RuleTeacher, choose_options, finetune_prompt, format_answer, parse_emotion, strip_answer_line,
)
from tinyemo.taxonomy import MIKELS8

PAPER_PROMPT = (
    "<image>\nProvide emotional reasoning about the image, on what you feel and how is the "
    "depicted emotion. Also choose the emotion that best corresponds to the image from the "
    "following options:\n\nLabels: [nervousness, optimism, sympathy]\n\nImportant: note that "
    "the correct label is nervousness."
)


@pytest.fixture(scope="module")
def scenes():
    rng = np.random.default_rng(21)
    return [sample_scene(rng, MIKELS8[i % 8]) for i in range(240)]


def test_finetune_prompt_is_the_papers_text():
    assert "<image>\n" + finetune_prompt(["nervousness", "optimism", "sympathy"], "nervousness") == PAPER_PROMPT
    with pytest.raises(ValueError, match="must be one of the options"):
        finetune_prompt(["awe", "fear", "anger"], "sadness")


def test_options_are_three_distinct_labels_including_the_correct_one():
    rng = random.Random(0)
    firsts = set()
    for label in MIKELS8 * 10:
        options = choose_options(rng, label)
        assert len(options) == 3 == len(set(options)) and label in options
        assert set(options) <= set(MIKELS8)
        firsts.add(options.index(label))
    assert firsts == {0, 1, 2}, "the correct label must not always sit at the same position"


def test_finetune_record_names_the_label_and_ends_with_it(scenes):
    teacher = RuleTeacher(seed=0)
    for scene in scenes[:40]:
        label = rules.rule_label(scene)
        options = choose_options(random.Random(1), label)
        human, gpt = teacher.finetune_record(scene, label, options)
        assert human["from"] == "human" and gpt["from"] == "gpt"
        assert human["value"].startswith("<image>\nProvide emotional reasoning")
        assert human["value"].endswith(f"the correct label is {label}.")
        assert f"Labels: [{', '.join(options)}]" in human["value"]
        assert gpt["value"].splitlines()[-1] == f"Emotion: {label}"
        assert parse_emotion(gpt["value"]) == label


def test_parse_emotion_reads_the_last_valid_line():
    assert parse_emotion(format_answer("I feel small.", "awe")) == "awe"
    assert parse_emotion("Some text\nemotion: Fear.") == "fear"
    assert parse_emotion("Emotion: awe\nthen\nEmotion: anger") == "anger"
    assert parse_emotion("I feel fear.") is None
    assert parse_emotion("Emotion: joy") is None  # not a Mikels-8 label
    assert parse_emotion("Emotion: joy", labels=("joy", "fear")) == "joy"
    assert strip_answer_line(format_answer("I feel small.", "awe")) == "I feel small."


def test_reasonings_are_varied_and_grounded(scenes):
    teacher = RuleTeacher(seed=0)
    texts, per_class = [], {}
    for scene in scenes:
        label = rules.rule_label(scene)
        reasoning = strip_answer_line(teacher.finetune_record(scene, label, choose_options(random.Random(0), label))[1]["value"])
        texts.append(reasoning)
        per_class.setdefault(label, []).append(reasoning)
        key, _ = rules.key_elements(scene, label)
        if key:
            kind = catalogue.object_kind(key[0])
            assert kind.noun in reasoning or kind.plural in reasoning, (key, reasoning)
        assert label in reasoning or any(w in reasoning for w in ("feel", "sense"))
    assert len(set(texts)) / len(texts) > 0.98
    for label, items in per_class.items():
        openings = {t.split(".")[0] for t in items}
        assert len(openings) >= min(4, len(items)), label  # no fixed sentence per class
    words = [len(t.split()) for t in texts]
    assert 25 < np.mean(words) < 150


def test_teacher_is_deterministic_and_seeded(scenes):
    a, b, c = RuleTeacher(0), RuleTeacher(0), RuleTeacher(1)
    scene = scenes[0]
    label = rules.rule_label(scene)
    options = ["awe", label, "fear"] if label not in ("awe", "fear") else [label, "anger", "sadness"]
    assert a.finetune_record(scene, label, options) == b.finetune_record(scene, label, options)
    assert a.pretrain_records(scene) == b.pretrain_records(scene)
    differs = [a.finetune_record(s, rules.rule_label(s), [rules.rule_label(s)]) !=
               c.finetune_record(s, rules.rule_label(s), [rules.rule_label(s)]) for s in scenes[:20]]
    assert any(differs)


def test_pretrain_records_are_three_single_turn_conversations(scenes):
    teacher = RuleTeacher(0)
    questions = set()
    for scene in scenes[:60]:
        records = teacher.pretrain_records(scene)
        assert len(records) == 3
        for conv in records:
            assert [t["from"] for t in conv] == ["human", "gpt"]
            assert conv[0]["value"].startswith("<image>\n") and conv[1]["value"].strip()
        assert records[0][0]["value"] == "<image>\nDescribe the image."
        caption = records[0][1]["value"]
        assert catalogue.object_kind(scene.objects[0].kind).noun in caption or \
            catalogue.object_kind(scene.objects[0].kind).plural in caption
        questions.add(records[1][0]["value"].split("\n")[1].split()[0])
    assert len(questions) >= 4  # several kinds of visual question


def test_unknown_label_is_refused(scenes):
    with pytest.raises(ValueError, match="unknown emotion 'joy'; valid: amusement"):
        RuleTeacher().finetune_record(scenes[0], "joy", ["joy", "fear", "awe"])
    with pytest.raises(ValueError, match="unknown LLM 'gpt-9'"):
        make_teacher("gpt-9")


@pytest.fixture(scope="module")
def tiny_llm():
    from tinyemo.models import llm

    return llm.load_llm("tiny-random-llama")


def test_llm_teacher_writes_generated_text_and_the_label_line(tiny_llm, scenes):
    model, tokenizer = tiny_llm
    teacher = LLMTeacher(model, tokenizer, max_new_tokens=12, sample=True)
    scene = scenes[3]
    label = rules.rule_label(scene)
    human, gpt = teacher.finetune_record(scene, label, [label])
    rule_text = RuleTeacher().finetune_record(scene, label, [label])[1]["value"]
    assert gpt["value"] != rule_text and teacher.fallbacks == 0
    assert parse_emotion(gpt["value"]) == label
    assert teacher.finetune_record(scene, label, [label])[1] == gpt  # seeded sampling
    assert len(teacher.pretrain_records(scene)) == 3


def test_llm_teacher_replaces_empty_generations_and_counts_them(tiny_llm, scenes):
    model, tokenizer = tiny_llm
    teacher = LLMTeacher(model, tokenizer, max_new_tokens=4, sample=False)  # greedy: only newlines
    scene = scenes[5]
    label = rules.rule_label(scene)
    answer = teacher.finetune_record(scene, label, [label])[1]["value"]
    assert teacher.fallbacks == 1 and teacher.generations == 1
    assert teacher.report() == {"teacher_generations": 1, "teacher_fallbacks": 1}
    assert teacher.summary() == ("teacher llm: 1 of 1 generated texts (100.0 %) came back empty "
                                 "and were replaced by the rule teacher's text")
    assert answer == RuleTeacher().finetune_record(scene, label, [label])[1]["value"]


def test_the_rule_teacher_reports_no_generations():
    teacher = RuleTeacher()
    assert teacher.report() == {"teacher_generations": 0, "teacher_fallbacks": 0}
    assert "no language model" in teacher.summary()


def test_the_llm_teacher_writes_its_texts_in_batches(tiny_llm, scenes, monkeypatch):
    """`prepare` generates every caption and reasoning in left-padded batches; the records
    then hold the texts each prompt gets alone."""
    from types import SimpleNamespace

    model, tokenizer = tiny_llm
    monkeypatch.setattr(model.generation_config, "no_repeat_ngram_size", 1)  # varied greedy text
    records = [SimpleNamespace(scene=scene, label=rules.rule_label(scene)) for scene in scenes[:6]]
    batched = LLMTeacher(model, tokenizer, max_new_tokens=10, batch_size=4)
    sizes = []
    original = batched.generate_batch
    monkeypatch.setattr(batched, "generate_batch", lambda prompts: sizes.append(len(prompts)) or original(prompts))
    batched.prepare(records)
    assert sizes == [4, 4, 4] and len(batched.written) == 12  # 6 captions and 6 reasonings
    alone = LLMTeacher(model, tokenizer, max_new_tokens=10)
    for record in records:
        options = [record.label]
        assert batched.finetune_record(record.scene, record.label, options) == \
            alone.finetune_record(record.scene, record.label, options)
        assert batched.pretrain_records(record.scene) == alone.pretrain_records(record.scene)
    assert sizes == [4, 4, 4]  # nothing generated after `prepare`
    assert batched.report() == alone.report() == {"teacher_generations": 12, "teacher_fallbacks": 0}
