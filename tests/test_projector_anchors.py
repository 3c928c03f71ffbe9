"""Anchors: BOS and mask handling, templates, synonyms (training only), sources, errors."""
import re

import pytest
import torch
from torch.nn import functional as F

from tinyemo.models import registry
from tinyemo.projector.anchors import (
    AS_TOKENIZED, KNOWN_LABELS, SYNONYMS, TEMPLATES, WITH_BOS, AnchorError, AnchorSet, anchor_tokens,
    build_anchor_set, embedding_table_encoder, random_encoder, template_texts, text_encoder,
)
from tinyemo.projector.texts import check_synonyms
from tinyemo.taxonomy import EKMAN6, MIKELS8, PARROTT25, UNBIASED6

WEIGHT = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))


class FakeTokenizer:
    """Word ids 3.. by position in a tiny vocabulary; BOS id 1 added only if `adds_bos`."""

    vocab = {"joy": 3, "fear": 4, "a": 5, "scene": 6, "of": 7, "deep": 8}

    def __init__(self, bos_token_id=1, adds_bos=False):
        self.bos_token_id, self.adds_bos = bos_token_id, adds_bos

    def __call__(self, text, add_special_tokens=True):
        ids = [self.vocab[word] for word in text.split()]
        if add_special_tokens and self.adds_bos:
            ids = [self.bos_token_id] + ids
        return {"input_ids": ids}


def expected(rows):
    return F.normalize(WEIGHT[rows].mean(dim=0), dim=0)


@pytest.mark.parametrize("adds_bos", [False, True])
def test_bos_is_included_exactly_once(adds_bos):
    encode = embedding_table_encoder(FakeTokenizer(adds_bos=adds_bos), WEIGHT)
    torch.testing.assert_close(encode(["joy"])[0], expected([1, 3]))


def test_no_bos_token_means_word_rows_only():
    encode = embedding_table_encoder(FakeTokenizer(bos_token_id=None), WEIGHT)
    torch.testing.assert_close(encode(["a scene"])[0], expected([5, 6]))


def test_padding_is_masked_out():
    encode = embedding_table_encoder(FakeTokenizer(), WEIGHT)
    together = encode(["joy", "a scene of deep fear"])
    torch.testing.assert_close(together[0], encode(["joy"])[0])
    torch.testing.assert_close(together[1], expected([1, 5, 6, 7, 8, 4]))
    torch.testing.assert_close(together.norm(dim=1), torch.ones(2))


def test_templates_and_ensembles():
    assert template_texts("joy", "bare") == ["joy"]
    assert template_texts("joy", "scene-evoking-viewers") == ["a scene evoking joy to viewers"]
    assert len(TEMPLATES) == 6
    encoder = random_encoder(16)
    single = build_anchor_set(["joy"], "random", "scene", encoder=encoder).anchors
    ensemble = build_anchor_set(["joy"], "random", ["bare", "scene"], encoder=encoder).anchors
    torch.testing.assert_close(ensemble[0], F.normalize(encoder(["joy"])[0] + single[0], dim=0))


def test_every_taxonomy_label_has_three_distinct_synonyms():
    assert set(EKMAN6) | set(MIKELS8) | set(UNBIASED6) | set(PARROTT25) == set(KNOWN_LABELS) == set(SYNONYMS)
    for label, words in SYNONYMS.items():
        assert len(set(words)) == 3 and label not in words
    words = [word for triple in SYNONYMS.values() for word in triple]
    assert len(words) == len(set(words))  # no word is the synonym of two labels


def test_synonyms_swap_only_in_training_targets():
    anchor_set = build_anchor_set(EKMAN6, "random", synonyms=True, encoder=random_encoder(16))
    assert anchor_set.anchors.shape == (6, 16) and anchor_set.synonyms.shape == (6, 3, 16)
    labels = torch.arange(6).repeat(50)
    generator = torch.Generator().manual_seed(0)
    never = anchor_set.training_targets(labels, 0.0, generator)
    torch.testing.assert_close(never, anchor_set.anchors[labels])
    always = anchor_set.training_targets(labels, 1.0, generator)
    assert not torch.isclose(always, anchor_set.anchors[labels]).all(dim=1).any()
    half = anchor_set.training_targets(labels, 0.5, generator)
    swapped = (~torch.isclose(half, anchor_set.anchors[labels]).all(dim=1)).float().mean()
    assert 0.35 < swapped < 0.65
    # Prediction uses `anchors` only: the label words, never a synonym.
    plain = build_anchor_set(EKMAN6, "random", encoder=random_encoder(16))
    torch.testing.assert_close(plain.anchors, anchor_set.anchors)


def test_random_source_is_fixed_per_text_and_seed():
    a, b = random_encoder(32, seed=0), random_encoder(32, seed=1)
    torch.testing.assert_close(a(["joy", "fear"]), a(["joy", "fear"]))
    assert not torch.allclose(a(["joy"]), b(["joy"]))
    assert abs(float(a(["joy"])[0] @ a(["fear"])[0])) < 0.6


def test_subset_keeps_rows_in_order():
    anchor_set = build_anchor_set(EKMAN6, "random", synonyms=True, encoder=random_encoder(8))
    sub = anchor_set.subset(["sadness", "anger"])
    torch.testing.assert_close(sub.anchors, anchor_set.anchors[[4, 0]])
    torch.testing.assert_close(sub.synonyms, anchor_set.synonyms[[4, 0]])


def test_unknown_names_are_clear_errors():
    with pytest.raises(AnchorError, match="unknown emotion label.*'happyness'.*anger"):
        build_anchor_set(["joy", "happyness"], "random")
    with pytest.raises(AnchorError, match="unknown template.*valid: bare"):
        template_texts("joy", "a-photo")
    with pytest.raises(AnchorError, match="unknown anchor source 'clip'"):
        text_encoder("clip", "tiny-random-llama")


def test_llm_source_reads_the_embedding_table_with_bos():
    from tinyemo.models.llm import load_embedding_table

    tokenizer, weight = load_embedding_table("tiny-random-llama")
    anchors = build_anchor_set(["joy"], "llm", llm="tiny-random-llama").anchors
    ids = tokenizer("joy", add_special_tokens=True)["input_ids"]
    rows = ids if ids[0] == tokenizer.bos_token_id else [tokenizer.bos_token_id] + ids
    torch.testing.assert_close(anchors[0], F.normalize(weight[rows].mean(dim=0), dim=0))
    assert anchors.shape == (1, 64)


def test_sentence_source_loads_offline_and_separates_meanings():
    anchor_set = build_anchor_set(["joy", "sadness", "fear"], "sentence")
    assert anchor_set.anchors.shape == (3, 384)
    encode = text_encoder("sentence")
    happiness = encode(["happiness"])[0]
    assert happiness @ anchor_set.anchors[0] > happiness @ anchor_set.anchors[2]


# --- which tokens: upstream's (as tokenized) for the paper's LLMs, BOS included otherwise ---------


@pytest.mark.parametrize("adds_bos", [False, True], ids=["phi-2-like", "llama-like"])
def test_as_tokenized_anchors_have_a_bos_row_only_where_the_tokenizer_adds_one(adds_bos):
    from tests.upstream_helpers import byte_tokenizer

    tokenizer = byte_tokenizer(adds_bos)
    weight = torch.randn(len(tokenizer), 8, generator=torch.Generator().manual_seed(0))
    words = tokenizer("joy", add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    as_tokenized = embedding_table_encoder(tokenizer, weight, AS_TOKENIZED)(["joy"])[0]
    with_bos = embedding_table_encoder(tokenizer, weight, WITH_BOS)(["joy"])[0]
    expected = F.normalize(weight[([bos] if adds_bos else []) + words].mean(dim=0), dim=0)
    torch.testing.assert_close(as_tokenized, expected)
    torch.testing.assert_close(with_bos, F.normalize(weight[[bos] + words].mean(dim=0), dim=0))
    assert torch.allclose(as_tokenized, with_bos) is adds_bos


def test_upstreams_mean_over_the_padded_length_points_the_same_way():
    """Upstream multiplies the padded rows by the mask and divides by the padded length: a
    positive factor per text away from the masked mean, so the unit anchors are equal."""
    from tests.upstream_helpers import byte_tokenizer, upstream_anchors

    tokenizer = byte_tokenizer(adds_bos=True)
    weight = torch.randn(len(tokenizer), 16, generator=torch.Generator().manual_seed(1))
    texts = ["joy", "a scene evoking sadness to viewers", "awe"]
    ours = embedding_table_encoder(tokenizer, weight, AS_TOKENIZED)(texts)
    torch.testing.assert_close(ours, upstream_anchors(tokenizer, weight, texts), rtol=0, atol=1e-6)
    masked = weight[tokenizer(texts[0])["input_ids"]].mean(dim=0)
    padded_length = len(tokenizer(texts[1])["input_ids"])
    assert not torch.allclose(masked, weight[tokenizer(texts[0])["input_ids"]].sum(dim=0) / padded_length)


def test_the_papers_llms_take_upstreams_tokens_and_the_default_keeps_its_bos():
    assert {name: anchor_tokens(name) for name in registry.LLMS} == {
        "smollm2-135m-instruct": WITH_BOS, "tiny-random-llama": WITH_BOS,
        "openelm-270m-instruct": AS_TOKENIZED, "openelm-450m-instruct": AS_TOKENIZED,
        "tinyllama-1.1b-chat": AS_TOKENIZED, "phi-2": AS_TOKENIZED}
    with pytest.raises(AnchorError, match="unknown anchor tokens 'no-bos'"):
        embedding_table_encoder(FakeTokenizer(), WEIGHT, "no-bos")


# --- synonyms never collide ----------------------------------------------------------------


def test_no_synonym_is_a_label_of_any_taxonomy():
    assert not {word for triple in SYNONYMS.values() for word in triple} & set(KNOWN_LABELS)


@pytest.mark.parametrize("label, words, message", [
    ("joy", ("happiness", "delight", "cheerfulness"),
     "'cheerfulness', a synonym of 'joy' (emotionroi), is itself the label 'cheerfulness' of webemo"),
    ("anger", ("rage", "fury", "annoyance"),
     "'rage', a synonym of 'anger' (emotionroi, emoset), is itself the label 'rage' of webemo"),
    ("surprise", ("astonishment", "shock", "terror"), "'terror' is a synonym of both 'fear' and 'surprise'"),
])
def test_the_synonym_check_names_the_word_and_both_labels(label, words, message):
    from tinyemo.datasets import dataset

    group = {name: dataset(name).label_names for name in ("emotionroi", "webemo", "emoset")}
    with pytest.raises(ValueError, match=re.escape(message)):
        check_synonyms(group, {**SYNONYMS, label: words})


def test_the_old_love_synonym_collides_in_unbiasedemo_with_webemo():
    from tinyemo.datasets import dataset

    group = {name: dataset(name).label_names for name in ("unbiasedemo", "webemo")}
    with pytest.raises(ValueError, match="'affection', a synonym of 'love' \\(unbiasedemo\\), is itself the "
                                         "label 'affection' of webemo"):
        check_synonyms(group, {**SYNONYMS, "love": ("affection", "tenderness", "fondness")})


def training_groups(profile):
    """Every training group a profile's stages train on: paper_table's groups, each ablate
    dataset alone, and the projector stage's datasets alone."""
    from tinyemo import config, feature_store
    from tinyemo.projector.params import PaperTableParams

    tree = config.render_profile(profile)
    groups = PaperTableParams(**tree["paper_table"]).groups()
    return groups + [[name] for name in tree["ablate"]["datasets"]] + [[name] for name in feature_store.DATASETS]


@pytest.mark.parametrize("profile", ["default", "smoke", "paper"])
def test_the_shipped_synonyms_pass_for_every_training_group_of_every_profile(profile):
    from tinyemo.datasets import dataset

    groups = training_groups(profile)
    assert groups
    for group in groups:
        check_synonyms({name: dataset(name).label_names for name in group})


def test_a_colliding_synonym_is_refused_when_the_parameters_are_validated(monkeypatch):
    from tinyemo import config

    monkeypatch.setitem(SYNONYMS, "joy", ("happiness", "delight", "cheerfulness"))
    with pytest.raises(config.ConfigError, match="paper_table.train_datasets.*'cheerfulness', a synonym of 'joy'"):
        config.render_profile("paper")
    config.render_profile("default")  # Emotion6 alone has no label `cheerfulness`
