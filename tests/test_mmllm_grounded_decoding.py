"""Word-grounded decoding: object names the image tokens do not show cannot be generated."""
import torch

from tests.mmllm_helpers import N_IMAGE_TOKENS, tiny_mmllm
from tinyemo.mmllm import artifact, grounded_decoding, infer

TOKEN_IDS = [40, 41, 42, 43, 44, 45]


class WholeWordTokenizer:
    """Every distinct text is one token (ids from 100 on), so names map to tokens 1:1."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.ids.setdefault(text, 100 + len(self.ids))]}

    def token(self, text):
        return self(text)["input_ids"][0]


def test_only_names_of_objects_the_image_shows_stay_open():
    tokenizer = WholeWordTokenizer()
    blocked = grounded_decoding.blocked_tokens(tokenizer, [["spider", "red"], ["flower"], []], 400)
    spider, flower, sun = (tokenizer.token(f" {w}") for w in ("spider", "flower", "sun"))
    assert not blocked[0, spider] and blocked[0, flower] and blocked[0, sun]
    # "flower" is the head of "wilted flower" too: showing either opens the token
    assert not blocked[1, flower] and blocked[1, spider]
    assert blocked[2].sum() == len(set(grounded_decoding._name_starts(tokenizer)))
    assert not blocked[:, :100].any(), "only object-name tokens are ever blocked"


def test_the_processor_sets_blocked_scores_to_minus_infinity():
    blocked = torch.tensor([[False, True, False], [False, False, False]])
    scores = grounded_decoding.ShownObjectsOnly(blocked)(None, torch.zeros(2, 4))
    assert scores[0, 1] == float("-inf") and torch.isfinite(scores[0, [0, 2, 3]]).all()
    assert torch.isfinite(scores[1]).all()


def test_word_grounded_models_are_constrained_and_free_connectors_are_not():
    torch.manual_seed(0)
    model, tokenizer = artifact.build_mmllm("tiny-random-llama", "tiny-random-cnn", N_IMAGE_TOKENS,
                                            "word_grounded", connector_options={
                                                "token_ids": TOKEN_IDS, "top_k": 2})
    patches = torch.randn(3, N_IMAGE_TOKENS, 16)
    shown = model.shown_token_ids(patches)
    assert shown.shape == (3, 2) and set(shown.flatten().tolist()) <= set(TOKEN_IDS)
    constraint = grounded_decoding.processor(model, tokenizer, patches)
    words = [[tokenizer.decode([t]) for t in row] for row in shown.tolist()]
    assert torch.equal(constraint.blocked, grounded_decoding.blocked_tokens(tokenizer, words, len(tokenizer)))
    assert constraint.blocked.any()
    texts = infer.generate(model, tokenizer, ["<image>\nDescribe."] * 3, patches, 6,
                           decoding=infer.Decoding(grounded=True))
    assert len(texts) == 3
    free, free_tokenizer = tiny_mmllm()
    assert grounded_decoding.processor(free, free_tokenizer, patches) is None


def test_decoding_settings_travel_with_the_model_and_reach_generate():
    settings = infer.Decoding(repetition_penalty=1.1, no_repeat_ngram_size=5, grounded=True)
    assert infer.Decoding.saved({"decoding": settings.as_dict()}) == settings
    # a model saved before the settings were recorded: its repetition penalty alone
    assert infer.Decoding.saved({"repetition_penalty": 1.2}) == infer.Decoding(1.2)
    free, tokenizer = tiny_mmllm()
    patches = torch.randn(1, N_IMAGE_TOKENS, 16)
    kwargs = infer._gen_kwargs(free, tokenizer, patches, settings)
    assert kwargs["no_repeat_ngram_size"] == 5 and kwargs["repetition_penalty"] == 1.1
    assert "logits_processor" not in kwargs, "a free connector's tokens are no words"
    assert "no_repeat_ngram_size" not in infer._gen_kwargs(free, tokenizer, patches, infer.Decoding())
    # no 2-gram twice: a greedy answer long enough to loop never repeats a pair of tokens
    ids = free.generate(_prompt(tokenizer), patches, max_new_tokens=40,
                        **infer._gen_kwargs(free, tokenizer, patches, infer.Decoding(no_repeat_ngram_size=2)) | {
                            "eos_token_id": -1})[0].tolist()
    pairs = list(zip(ids, ids[1:]))
    assert len(pairs) == len(set(pairs))


def _prompt(tokenizer):
    from tinyemo.mmllm.data import collate
    from tinyemo.mmllm.prompts import encode_prompt

    return collate([encode_prompt(tokenizer, "<image>\nDescribe.", N_IMAGE_TOKENS)],
                   tokenizer.pad_token_id, "left")["input_ids"]
