"""The word-grounded connector: vocabulary, fit without the LLM, exact word rows, save/load."""
import pytest
import torch

from tests.mmllm_helpers import N_IMAGE_TOKENS
from tinyemo.mmllm import artifact, grounding, stage_runs
from tinyemo.mmllm.connector import WordGrounded, build_connector
from tinyemo.mmllm.data import collate
from tinyemo.mmllm.prompts import IMAGE_TOKEN_ID, encode_prompt

TOKEN_IDS = [40, 41, 42, 43, 44, 45]


class WordTokenizer:
    """Single-token ids for a few words; every other word splits into two tokens."""

    known = {" spider": 7, " balloon": 8, " red": 9, " the": 10, " picture": 11}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.known[text]] if text in self.known else [1, 2]}


def test_vocabulary_keeps_single_token_words_within_the_document_frequency_band():
    captions = ["the red spider", "the spider and the balloon", "the red balloon picture",
                "the spider, red", "the picture of a skeleton", "the skeleton"]
    vocabulary = grounding.caption_vocabulary(captions, WordTokenizer(), min_count=2, max_share=0.5)
    # "the" is in every caption, "skeleton" is two tokens, "and" and "of" occur once
    assert vocabulary.words == ["red", "spider", "balloon", "picture"]
    assert vocabulary.token_ids == [9, 7, 8, 11]
    bags = grounding.bag_of_words(["A red red spider.", "nothing here"], vocabulary)
    assert bags[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0, 0]) and bags[1].sum() == 0
    with pytest.raises(ValueError, match="caption words pass"):
        grounding.caption_vocabulary(["the"], WordTokenizer())


def test_idf_weighting_silences_a_word_of_every_caption():
    bags = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    weighted = grounding.idf_weighted(bags)
    # word 0 is in 3 of 4 bags, words 1 and 2 in one each: log(4/3) against log(4)
    expected = torch.log(torch.tensor(4 / 3)) / (torch.log(torch.tensor(4 / 3)) + torch.log(torch.tensor(4.0)))
    assert weighted[0, 0] == pytest.approx(float(expected)) and weighted[0, 1] == pytest.approx(1 - float(expected))
    assert weighted[:3].sum(dim=1).tolist() == pytest.approx([1, 1, 1]) and weighted[3].sum() == 0
    assert grounding.idf_weighted(torch.ones(3, 2) / 2)[0].sum() == 0  # every word everywhere


def planted(n_images=240, n_patches=4, dim=16, seed=0):
    """Patches drawn around one prototype per word; each image's bag holds its patches' words."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(len(TOKEN_IDS), dim, generator=generator) * 3
    words = torch.randint(len(TOKEN_IDS), (n_images, n_patches), generator=generator)
    patches = prototypes[words] + 0.3 * torch.randn(n_images, n_patches, dim, generator=generator)
    bags = torch.zeros(n_images, len(TOKEN_IDS)).scatter_add_(
        1, words, torch.ones(n_images, n_patches))
    return patches, words, bags / n_patches


def test_fit_without_the_llm_learns_a_planted_patch_to_word_mapping():
    patches, words, bags = planted()
    torch.manual_seed(0)
    connector = WordGrounded(16, 64, TOKEN_IDS, width=32)
    before = (connector.chosen_words(patches[:40]) == words[:40]).float().mean()
    history = grounding.fit_word_scorer(connector, patches[:200], bags[:200], epochs=60,
                                        batch_size=32, seed=0)
    assert history[-1]["loss"] < history[0]["loss"]
    held_out = (connector.chosen_words(patches[200:]) == words[200:]).float().mean()
    assert before < 0.5 and held_out >= 0.95
    top = WordGrounded(16, 64, TOKEN_IDS, top_k=2, width=32)
    top.load_state_dict(connector.state_dict())
    assert grounding.precision_at(top.image_distribution(patches[200:]), bags[200:], k=2) >= 0.95


@pytest.mark.parametrize("top_k", [0, 3])
def test_image_tokens_are_exact_rows_of_the_llm_embedding_table(top_k):
    torch.manual_seed(0)
    model, tokenizer = artifact.build_mmllm("tiny-random-llama", "tiny-random-cnn", N_IMAGE_TOKENS,
                                            "word_grounded", connector_options={
                                                "token_ids": TOKEN_IDS, "top_k": top_k})
    assert model.n_patches == N_IMAGE_TOKENS and model.n_image_tokens == (top_k or N_IMAGE_TOKENS)
    patches = torch.randn(2, N_IMAGE_TOKENS, 16)
    ids = encode_prompt(tokenizer, "<image>\nDescribe the image.", model.n_image_tokens)
    batch = collate([ids, ids], 0)
    embeds = model.embed(batch["input_ids"], patches)
    table = model.llm.get_input_embeddings().weight
    chosen = torch.tensor(TOKEN_IDS)[model.connector.chosen_words(patches)]
    image_rows = embeds[batch["input_ids"] == IMAGE_TOKEN_ID].reshape(2, -1, table.shape[1])
    assert torch.equal(image_rows, table[chosen])
    if top_k:
        assert all(len(set(row.tolist())) == top_k for row in chosen)  # distinct words
    # straight-through: a loss on the tokens reaches the scorer
    image_rows.sum().backward()
    assert model.connector.scorer[-1].weight.grad.abs().sum() > 0


def test_save_and_load_round_trip_rebuilds_the_vocabulary(tmp_path):
    torch.manual_seed(0)
    options = {"token_ids": TOKEN_IDS, "top_k": 2}
    model, _ = artifact.build_mmllm("tiny-random-llama", "tiny-random-cnn", N_IMAGE_TOKENS,
                                    "word_grounded", connector_options=options)
    with torch.no_grad():
        model.connector.scorer[-1].bias.copy_(10 * torch.arange(len(TOKEN_IDS), dtype=torch.float))
    artifact.set_trainable(model, "connector")
    artifact.save_mmllm(tmp_path, model, {
        "llm": "tiny-random-llama", "vision_tower": "tiny-random-cnn", "connector": "word_grounded",
        "connector_options": options, "connector_words": list("abcdef"),
        "n_patches": N_IMAGE_TOKENS, "n_image_tokens": 2, "lora": None})
    loaded, _, config = artifact.load_mmllm(tmp_path)
    patches = torch.randn(3, N_IMAGE_TOKENS, 16)
    assert config["connector_words"] == list("abcdef") and loaded.n_image_tokens == 2
    assert loaded.connector.token_ids.tolist() == TOKEN_IDS
    assert torch.equal(loaded.connector.chosen_words(patches), model.connector.chosen_words(patches))
    # the image tokens read back as words: the two largest biases, most likely first
    assert stage_runs.image_token_words(loaded, patches, config["connector_words"]) == [["f", "e"]] * 3
    free, _ = artifact.build_mmllm("tiny-random-llama", "tiny-random-cnn", N_IMAGE_TOKENS, "mlp2x_gelu")
    assert stage_runs.image_token_words(free, patches, list("abcdef")) is None


def test_unknown_connector_and_bad_options_are_refused():
    with pytest.raises(ValueError, match="valid connectors: linear, mlp2x_gelu, word_grounded"):
        build_connector("word_mixture", 16, 64)
    with pytest.raises(ValueError, match="top_k 9"):
        WordGrounded(16, 64, TOKEN_IDS, top_k=9)
    with pytest.raises(ValueError, match="distinct token ids"):
        WordGrounded(16, 64, [3, 3])


def test_heaviest_words_rank_each_bag_and_repeat_short_ones_in_turn():
    bags = torch.tensor([[0.1, 0.6, 0.0, 0.3], [0.0, 0.0, 1.0, 0.0]])
    assert grounding.heaviest_words(bags, 4).tolist() == [[1, 3, 0, 1], [2, 2, 2, 2]]
    with pytest.raises(ValueError, match="bag 1 holds no vocabulary word"):
        grounding.heaviest_words(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), 2)


def test_oracle_words_are_the_images_caption_words_and_free_connectors_have_none(monkeypatch):
    captions = {"a": "a red spider", "b": "the red balloon", "c": "a red picture"}
    monkeypatch.setattr(stage_runs, "caption_records", lambda split: [
        {"image": f"{split}/{i}.png", "conversations": [{}, {"value": text}]}
        for i, text in captions.items()])
    images = stage_runs.TestImages([type("Scene", (), {"id": i}) for i in ("b", "a")], [], None, None)
    config = {"connector": "word_grounded", "n_image_tokens": 3,
              "connector_words": ["red", "spider", "balloon"],
              "connector_options": {"token_ids": [9, 7, 8]}}
    ids, words = stage_runs.oracle_words(images, "test", config)
    # "red" is in both images' captions, so it weighs nothing: each image shows its own noun
    assert words == [["balloon"] * 3, ["spider"] * 3] and ids.tolist() == [[8] * 3, [7] * 3]
    assert stage_runs.oracle_words(images, "test", {**config, "connector": "mlp2x_gelu"}) is None


def test_word_probabilities_read_a_memory_mapped_patch_store(tmp_path):
    """The pretrain notebook scores the validation images' patches as the feature store
    keeps them: a PatchStore, not a tensor."""
    from tinyemo import feature_store
    from tinyemo.feature_store import FeatureSet, PatchStore
    from tinyemo.mmllm.connector import WordGrounded
    from tinyemo.taxonomy import EKMAN6

    generator = torch.Generator().manual_seed(0)
    grids = torch.randn(5, 4, 6, generator=generator)
    FeatureSet(ids=[f"i{k}" for k in range(5)], pooled=torch.randn(5, 3, generator=generator),
               labels=[EKMAN6[0]] * 5, label_names=EKMAN6, patches=grids).save(
        tmp_path / "emoscenes" / "val", shard_size=2)
    store = feature_store.load_features("emoscenes", "val", root=tmp_path).patches
    assert isinstance(store, PatchStore)
    connector = WordGrounded(6, 8, token_ids=[3, 4, 5], top_k=2)
    with torch.no_grad():
        from_store = connector.image_distribution(store)
        from_tensor = connector.image_distribution(grids.half().float())
    assert torch.allclose(from_store, from_tensor)
