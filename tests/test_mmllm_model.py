"""The MM-LLM's parts: connector, prompt building with answer-only labels, image splicing."""
import pytest
import torch

from tests.mmllm_helpers import N_IMAGE_TOKENS, records, tiny_mmllm
from tinyemo.mmllm.connector import build_connector
from tinyemo.mmllm.data import build_examples, collate
from tinyemo.mmllm.prompts import IGNORE, IMAGE_TOKEN_ID, encode_conversation, encode_prompt


@pytest.fixture(scope="module")
def tiny():
    return tiny_mmllm()


def test_connector_is_mlp2x_gelu():
    connector = build_connector("mlp2x_gelu", 16, 64)
    assert [type(m).__name__ for m in connector] == ["Linear", "GELU", "Linear"]
    assert connector(torch.zeros(2, 5, 16)).shape == (2, 5, 64)
    with pytest.raises(ValueError, match="valid connectors: linear, mlp2x_gelu, word_grounded"):
        build_connector("mlp", 16, 64)


def test_labels_cover_only_the_answer_and_end_of_turn(tiny):
    _, tokenizer = tiny
    conversation = records(1)[0]["conversations"]
    encoded = encode_conversation(tokenizer, conversation, N_IMAGE_TOKENS)
    assert len(encoded.input_ids) == len(encoded.labels)
    learned = [label for label in encoded.labels if label != IGNORE]
    assert tokenizer.decode(learned) == "A red sun.<|im_end|>\n"
    # the learned tokens are the last ones, and they equal the inputs there
    first = encoded.labels.index(learned[0])
    assert encoded.input_ids[first:] == learned
    assert all(label == IGNORE for label in encoded.labels[:first])
    assert encoded.input_ids.count(IMAGE_TOKEN_ID) == N_IMAGE_TOKENS


def test_multi_turn_conversations_learn_every_answer(tiny):
    _, tokenizer = tiny
    conversation = records(1)[0]["conversations"] + [
        {"from": "human", "value": "And the mood?"}, {"from": "gpt", "value": "Warm."}]
    encoded = encode_conversation(tokenizer, conversation, N_IMAGE_TOKENS)
    text = tokenizer.decode([t if t != IGNORE else tokenizer.pad_token_id for t in encoded.labels],
                            skip_special_tokens=False).replace("<pad>", "")
    assert text == "A red sun.<|im_end|>\nWarm.<|im_end|>\n"


def test_prompt_uses_the_chat_template_and_places_the_image(tiny):
    _, tokenizer = tiny
    ids = encode_prompt(tokenizer, "<image>\nDescribe the image.", N_IMAGE_TOKENS)
    start = ids.index(IMAGE_TOKEN_ID)
    assert tokenizer.decode(ids[:start]) == "<|im_start|>user\n"
    assert tokenizer.decode(ids[start + N_IMAGE_TOKENS:]).endswith("<|im_start|>assistant\n")


def test_image_tokens_are_spliced_exactly_at_the_placeholder(tiny):
    model, tokenizer = tiny
    ids = [encode_prompt(tokenizer, "<image>\nDescribe.", N_IMAGE_TOKENS),
           encode_prompt(tokenizer, "Look: <image>\nand describe it in detail.", N_IMAGE_TOKENS)]
    batch = collate(ids, tokenizer.pad_token_id, "left")
    patches = torch.randn(2, N_IMAGE_TOKENS, 16)
    embeds = model.embed(batch["input_ids"], patches)
    image = model.connector(patches)
    table = model.llm.get_input_embeddings().weight
    for row in range(2):
        where = (batch["input_ids"][row] == IMAGE_TOKEN_ID).nonzero().flatten()
        assert where.tolist() == list(range(where[0], where[0] + N_IMAGE_TOKENS))
        assert torch.allclose(embeds[row, where], image[row])
        others = batch["input_ids"][row] != IMAGE_TOKEN_ID
        assert torch.allclose(embeds[row, others], table[batch["input_ids"][row, others]])


def test_prompts_without_exactly_one_image_are_refused(tiny):
    model, tokenizer = tiny
    ids = torch.tensor([encode_prompt(tokenizer, "no image here", N_IMAGE_TOKENS)])
    with pytest.raises(ValueError, match="exactly one <image>"):
        model.embed(ids, torch.zeros(1, N_IMAGE_TOKENS, 16))


def test_loss_equals_the_llms_own_loss(tiny):
    model, tokenizer = tiny
    examples = build_examples(records(2), tokenizer, ["000", "001"], N_IMAGE_TOKENS)
    batch = collate([e.input_ids for e in examples], tokenizer.pad_token_id, "right",
                    [e.labels for e in examples])
    patches = torch.randn(2, N_IMAGE_TOKENS, 16)
    ours = model(batch["input_ids"], patches, batch["attention_mask"], batch["labels"]).loss
    embeds = model.embed(batch["input_ids"], patches)
    reference = model.llm(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                          labels=batch["labels"]).loss
    assert torch.allclose(ours, reference, atol=1e-5)


def test_records_without_cached_features_are_an_error(tiny):
    _, tokenizer = tiny
    with pytest.raises(KeyError, match="re-run `dvc repro features`"):
        build_examples(records(2), tokenizer, ["000"], N_IMAGE_TOKENS)


def test_generation_returns_new_tokens_for_left_padded_batches(tiny):
    model, tokenizer = tiny
    ids = [encode_prompt(tokenizer, "<image>\nHi.", N_IMAGE_TOKENS),
           encode_prompt(tokenizer, "<image>\nA longer question here.", N_IMAGE_TOKENS)]
    batch = collate(ids, tokenizer.pad_token_id, "left")
    out = model.generate(batch["input_ids"], torch.randn(2, N_IMAGE_TOKENS, 16),
                         batch["attention_mask"], max_new_tokens=5,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=-1)
    assert out.shape == (2, 5)


def test_image_reliance_compares_each_record_with_another_records_image(tiny):
    from dataclasses import replace

    from tests.mmllm_helpers import examples_and_patches
    from tinyemo.mmllm.stage_runs import image_reliance, mean_loss

    model, tokenizer = tiny
    examples, patches = examples_and_patches(tokenizer, 4)
    pad = tokenizer.pad_token_id
    measured = image_reliance(model, examples, patches, pad)
    shifted = [replace(e, patch_row=(e.patch_row + 1) % 4) for e in examples]
    assert measured["loss_other_image"] == pytest.approx(mean_loss(model, shifted, patches, pad))
    assert measured["image_reliance"] != 0
    blind = image_reliance(model, examples, patches[:1].expand(4, -1, -1), pad)
    assert blind["image_reliance"] == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="at least two different images"):
        image_reliance(model, examples[:1], patches, pad)


def test_token_ids_in_place_of_patches_show_their_own_embeddings(tiny):
    model, tokenizer = tiny
    ids = torch.tensor([encode_prompt(tokenizer, "<image>\nDescribe.", N_IMAGE_TOKENS)])
    shown = torch.tensor([[5, 6, 7, 8]])
    embeds = model.embed(ids, shown)
    table = model.llm.get_input_embeddings().weight
    assert torch.equal(embeds[0, ids[0] == IMAGE_TOKEN_ID], table[shown[0]])
    with pytest.raises(ValueError, match="patches \\(or token ids\\)"):
        model.embed(ids, torch.tensor([[5, 6]]))
