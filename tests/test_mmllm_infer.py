"""`infer.projector_options`: the projector's label, score and prompt options per image."""
import torch
from torch.nn import functional as F

from tests.projector_helpers import latent_world
from tinyemo.mmllm import infer
from tinyemo.projector.artifact import ProjectorArtifact
from tinyemo.projector.train import Recipe, train_projector


def test_options_are_the_top_k_labels_by_cosine_best_first():
    features, labels, anchors = latent_world(n_per_class=10, feature_dim=16)
    model = train_projector(features, labels, anchors, Recipe(epochs=2)).model.eval()
    artifact = ProjectorArtifact(model, anchors.anchors, anchors.label_names, {})
    rows = features[::9]
    with torch.no_grad():  # computed here, from the model and the anchors
        cosines = F.normalize(model(rows), dim=-1) @ F.normalize(anchors.anchors, dim=-1).T
    best, order = cosines.topk(3, dim=1)
    options = infer.projector_options(artifact, rows, k=3)
    assert len(options) == len(rows)
    for (label, score, offered), row_best, row_order in zip(options, best, order):
        names = [anchors.label_names[i] for i in row_order]
        assert offered == names and label == names[0]
        assert isinstance(score, float) and abs(score - float(row_best[0])) < 1e-5


def test_k_larger_than_the_label_set_offers_every_label_once():
    features, labels, anchors = latent_world(n_per_class=10, feature_dim=16)
    model = train_projector(features, labels, anchors, Recipe(epochs=1)).model.eval()
    artifact = ProjectorArtifact(model, anchors.anchors, anchors.label_names, {})
    (_, _, offered), = infer.projector_options(artifact, features[:1], k=50)
    assert sorted(offered) == sorted(anchors.label_names)


def test_batched_generation_answers_each_prompt_as_it_would_alone():
    """Prompts of different lengths share a batch, padded on the left: each answer is the
    one the prompt gets alone (greedy decoding)."""
    from tests.mmllm_helpers import N_IMAGE_TOKENS, tiny_mmllm
    from tinyemo.mmllm.prompts import encode_prompt

    model, tokenizer = tiny_mmllm()
    prompts = [infer.generative_prompt(["joy", "fear"]),
               infer.detached_prompt("awe", ["awe", "fear", "anger"]),
               infer.with_image("Describe the image.")]
    lengths = {len(encode_prompt(tokenizer, p, N_IMAGE_TOKENS)) for p in prompts}
    assert len(lengths) == 3  # the batch needs padding
    patches = torch.randn(3, N_IMAGE_TOKENS, 16, generator=torch.Generator().manual_seed(4))
    varied = infer.Decoding(no_repeat_ngram_size=1)  # the random tiny LLM would repeat a newline
    together = infer.generate(model.eval(), tokenizer, prompts, patches, 8, batch_size=3,
                              decoding=varied)
    alone = [infer.generate(model, tokenizer, [p], patches[i:i + 1], 8, decoding=varied)[0]
             for i, p in enumerate(prompts)]
    assert together == alone and all(len(answer) >= 4 for answer in together)
