"""TinyLLaVA's prompt recipe: conversation templates, BOS, answer-only labels."""
from __future__ import annotations

import pytest
from tokenizers import processors

from tinyemo import config
from tinyemo.mmllm import conversations, prompts
from tinyemo.mmllm.prompts import IGNORE, IMAGE_TOKEN_ID
from tinyemo.models.llm import tiny_tokenizer

RECORD = [{"from": "human", "value": "<image>\nWhat emotion does the image evoke?"},
          {"from": "gpt", "value": "A bright party. Emotion: joy"}]


def bos_adding_tokenizer():
    """The byte-level test tokenizer, made to add its BOS by itself as Llama-2's does."""
    tokenizer = tiny_tokenizer()
    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.bos_token_id)])
    return tokenizer


def text_of(tokenizer, ids):
    return tokenizer.decode([i for i in ids if i != IMAGE_TOKEN_ID], skip_special_tokens=False)


def test_tinyllava_renders_tinyllavas_llama_and_phi_format():
    tokenizer = tiny_tokenizer()
    conversations.use_conversation(tokenizer, "tinyllava")
    messages = prompts.to_messages(RECORD)
    eos = tokenizer.eos_token
    # TinyLLaVA: system + " ", "USER: " + "<image>\n" + question + " ", "ASSISTANT: " + answer + eos
    expected = (conversations.TINYLLAVA_SYSTEM + " USER: <image>\nWhat emotion does the image "
                "evoke? ASSISTANT: A bright party. Emotion: joy" + eos)
    assert prompts.render(tokenizer, messages, add_generation_prompt=False) == expected
    assert prompts.render(tokenizer, messages[:1], add_generation_prompt=True) == \
        expected[: expected.index("ASSISTANT:") + len("ASSISTANT:")]
    with_system = prompts.to_messages(RECORD, system_prompt="Be brief.")
    assert prompts.render(tokenizer, with_system, False).startswith("Be brief. USER: <image>\n")


def test_tinyllava_moves_the_image_to_the_front_of_its_turn():
    tokenizer = tiny_tokenizer()
    conversations.use_conversation(tokenizer, "tinyllava")
    turns = [{"from": "human", "value": "Describe it. <image>"}, {"from": "gpt", "value": "A cat."}]
    assert "USER: <image>\nDescribe it. ASSISTANT:" in prompts.render(
        tokenizer, prompts.to_messages(turns), False)


def test_plain_keeps_only_image_and_caption_and_learns_the_caption():
    tokenizer = tiny_tokenizer()
    conversations.use_conversation(tokenizer, "plain")
    encoded = prompts.encode_conversation(tokenizer, RECORD, n_image_tokens=3)
    assert encoded.input_ids[:3] == [IMAGE_TOKEN_ID] * 3
    assert encoded.labels[:3] == [IGNORE] * 3
    assert text_of(tokenizer, encoded.input_ids) == "A bright party. Emotion: joy\n"
    assert encoded.labels[3:] == encoded.input_ids[3:]


@pytest.mark.parametrize("adds_bos", [True, False])
def test_bos_leads_only_where_the_tokenizer_adds_one(adds_bos):
    tokenizer = bos_adding_tokenizer() if adds_bos else tiny_tokenizer()
    conversations.use_conversation(tokenizer, "tinyllava")
    bos = tokenizer.bos_token_id
    trained = prompts.encode_conversation(tokenizer, RECORD, n_image_tokens=2)
    asked = prompts.encode_prompt(tokenizer, RECORD[0]["value"], n_image_tokens=2)
    assert (trained.input_ids[0] == bos) is adds_bos
    assert (asked[0] == bos) is adds_bos
    assert trained.input_ids.count(bos) == int(adds_bos)  # once, not per segment
    assert trained.labels[0] == IGNORE
    assert trained.input_ids[:len(asked)] == asked  # generation sees the training prefix


def test_answer_labels_end_with_the_end_of_sequence_token():
    tokenizer = bos_adding_tokenizer()
    conversations.use_conversation(tokenizer, "tinyllava")
    encoded = prompts.encode_conversation(tokenizer, RECORD, n_image_tokens=2)
    answer = [label for label in encoded.labels if label != IGNORE]
    assert answer[-1] == tokenizer.eos_token_id
    assert text_of(tokenizer, answer).strip() == "A bright party. Emotion: joy" + tokenizer.eos_token


def test_auto_picks_tinyllava_for_paper_llms_and_the_own_template_otherwise():
    assert conversations.resolve("auto", "smollm2-135m-instruct") == "chat"
    for name in ("openelm-270m-instruct", "openelm-450m-instruct", "tinyllama-1.1b-chat", "phi-2"):
        assert conversations.resolve("auto", name) == "tinyllava"
    assert conversations.resolve("plain", "phi-2") == "plain"
    with pytest.raises(conversations.UnknownConversationError, match="valid: auto, tinyllava, plain, chat"):
        conversations.resolve("llama", "phi-2")


def test_chat_keeps_the_llms_own_template():
    tokenizer = tiny_tokenizer()
    own = tokenizer.chat_template
    conversations.use_conversation(tokenizer, "chat")
    assert tokenizer.chat_template == own


def test_tinyllava_needs_an_end_of_sequence_token():
    tokenizer = tiny_tokenizer()
    tokenizer.eos_token = None
    with pytest.raises(conversations.UnknownConversationError, match="eos_token"):
        conversations.use_conversation(tokenizer, "tinyllava")


def test_paper_profile_is_tinyllavas_recipe():
    sections = config.validate(config.render_profile("paper"))
    assert sections["pretrain"].conversation == "plain"
    assert sections["finetune"].conversation == "auto"
    assert sections["finetune"].trainable == "full"
    assert sections["finetune"].lr == pytest.approx(2e-5)
    assert sections["pretrain"].system_prompt is None and sections["finetune"].system_prompt is None


def test_finetuning_refuses_the_plain_template():
    with pytest.raises(ValueError, match="plain keeps only the image"):
        config.validate_section("finetune", {"lr": 1e-3, "conversation": "plain"})


@pytest.mark.parametrize("name, bos, eos", [
    ("openelm-270m-instruct", "<s>", "</s>"), ("openelm-450m-instruct", "<s>", "</s>"),
    ("tinyllama-1.1b-chat", "<s>", "</s>"), ("phi-2", None, "<|endoftext|>")])
def test_paper_llms_tokenizers_get_tinyllavas_recipe(name, bos, eos):
    from tinyemo.models.llm import with_chat_defaults
    from tinyemo.models.reduced import reduced_tokenizer

    tokenizer = with_chat_defaults(reduced_tokenizer(name))
    conversations.use_conversation(tokenizer, conversations.resolve("auto", name))
    encoded = prompts.encode_conversation(tokenizer, RECORD, n_image_tokens=4)
    first = tokenizer.convert_ids_to_tokens(encoded.input_ids[0])
    assert (first == bos) if bos else first != tokenizer.bos_token
    answer = [label for label in encoded.labels if label != IGNORE]
    assert tokenizer.convert_ids_to_tokens(answer[-1]) == eos
    assert encoded.input_ids.count(IMAGE_TOKEN_ID) == 4
