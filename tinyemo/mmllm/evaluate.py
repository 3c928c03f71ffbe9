"""Scoring the MM-LLM against the scene graphs, where the truth is known.

Per reasoning: does it name the correct emotion (in the reasoning itself, not only the final
`Emotion:` line); which catalogue objects does it mention, and how many of the scene's key
objects (those that drive its emotion under the rules) and key colours are among them;
which mentioned objects are not in the image at all (hallucinations). Over a test set:
the shares and rates below, label accuracy of both inference modes, and ROUGE-L against
the teacher's reference answers.

The prompt of the reasoning names the true label, and every label has its typical
objects, so two more readings separate what the image contributes from what the label
does: the same prompts with *another* test image's patches (`*_shuffled`: a model that
reads its image loses key-object recall there), and the generative prompt, which names no
label (`generative_*`: its reasoning cannot lean on the hint).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from statistics import mean
from typing import Sequence

from tinyemo.scenes import catalogue
from tinyemo.scenes.teacher import strip_answer_line


@dataclass
class ReasoningScore:
    names_emotion: bool
    mentioned: set[str]  # object kinds mentioned
    hallucinated: set[str]  # mentioned kinds that are not in the image
    key_object_recall: float | None  # None when the scene has no key objects
    key_colour_recall: float | None


@lru_cache(maxsize=1)
def object_terms() -> list[tuple[str, str]]:
    """(kind, term) for every way the catalogue names an object: noun, plural, and the
    head of "X of Y" nouns ("flies" for "swarm of flies"); longest terms first per kind."""
    terms = []
    for kind in catalogue.OBJECT_KINDS.values():
        names = {kind.noun, kind.plural}
        for noun in (kind.noun, kind.plural):
            if " of " in noun:
                names.add(noun.split(" of ", 1)[1])
        terms += [(kind.name, term) for term in sorted(names, key=len, reverse=True)]
    return terms


@lru_cache(maxsize=1)
def _object_patterns() -> list[tuple[str, re.Pattern]]:
    return [(kind, re.compile(rf"\b{re.escape(term)}\b", re.IGNORECASE))
            for kind, term in object_terms()]


# "my heart skips a beat", "our hearts sink": the viewer's own body, never a depicted object
_POSSESSED = re.compile(r"\b(?:my|our|your)\s+$", re.IGNORECASE)


def mentioned_objects(text: str) -> set[str]:
    """Object kinds named in `text`; a name inside a longer one counts only for the longer
    ("wilted flowers" is a wilted flower, not a flower), and a name after "my", "our" or
    "your" is an idiom of the viewer ("my heart skips a beat"), not an object."""
    spans = [(m.start(), m.end(), kind) for kind, pattern in _object_patterns()
             for m in pattern.finditer(text) if not _POSSESSED.search(text[:m.start()])]
    kept = [s for s in spans if not any(
        o[0] <= s[0] and s[1] <= o[1] and (o[1] - o[0]) > (s[1] - s[0]) for o in spans)]
    return {kind for _, _, kind in kept}


def mentions(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None


def _recall(wanted: Sequence[str], found: set[str]) -> float | None:
    return sum(w in found for w in wanted) / len(wanted) if wanted else None


def score_reasoning(text: str, label: str, present: Sequence[str], key_objects: Sequence[str],
                    key_colours: Sequence[str]) -> ReasoningScore:
    """Score one generated answer against its image's scene graph and true label."""
    body = strip_answer_line(text)
    named = mentioned_objects(body)
    colours = {c for c in key_colours if mentions(body, c)}
    return ReasoningScore(
        names_emotion=mentions(body, label),
        mentioned=named,
        hallucinated=named - set(present),
        key_object_recall=_recall(key_objects, named),
        key_colour_recall=_recall(key_colours, colours),
    )


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 (rouge_score, stemmed) of predictions against references."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return mean(scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references))


def summarize_reasonings(scores: Sequence[ReasoningScore]) -> dict[str, float]:
    """Shares over a test set (hallucination rate = hallucinated / all mentioned objects)."""
    mentioned = sum(len(s.mentioned) for s in scores)
    objects = [s.key_object_recall for s in scores if s.key_object_recall is not None]
    colours = [s.key_colour_recall for s in scores if s.key_colour_recall is not None]
    return {
        "reasoning_names_correct_emotion": mean(s.names_emotion for s in scores),
        "key_object_recall": mean(objects) if objects else float("nan"),
        "key_colour_recall": mean(colours) if colours else float("nan"),
        "hallucination_rate": sum(len(s.hallucinated) for s in scores) / mentioned if mentioned else 0.0,
        "reasonings_with_hallucination": mean(bool(s.hallucinated) for s in scores),
        "objects_mentioned_per_reasoning": mentioned / len(scores),
    }


@lru_cache(maxsize=1)
def head_words() -> dict[str, frozenset[str]]:
    """word -> the object kinds it names on its own: a one-word name, or the last word of a
    longer one ("glass" for broken glass, "stars" for field of stars, "flower" for both
    flower and wilted flower)."""
    heads: dict[str, set[str]] = {}
    for kind, term in object_terms():
        heads.setdefault(term.split(" of ", 1)[-1].split()[-1].lower(), set()).add(kind)
    return {word: frozenset(kinds) for word, kinds in heads.items()}


def kinds_named_by(words: Sequence[str]) -> set[str]:
    """The object kinds a list of single words names on its own (`head_words`)."""
    heads = head_words()
    return {kind for word in words for kind in heads.get(word.strip().lower(), ())}


def key_objects_in_words(word_lists: Sequence[Sequence[str]], scenes: Sequence) -> float:
    """Mean share of each scene's key objects that its word list names (`kinds_named_by`):
    for the word-grounded connector's image tokens, the most the LLM can name from its image."""
    recalls = []
    for words, record in zip(word_lists, scenes):
        if record.key_objects:
            recalls.append(_recall(record.key_objects, kinds_named_by(words)))
    return mean(recalls) if recalls else float("nan")


def object_token_ids(tokenizer) -> set[int]:
    """Token ids of every catalogue object name (noun, plural, head of "X of Y"), as written
    inside a sentence: the answer tokens that only the image can predict."""
    terms = {term for _, term in object_terms() if " of " not in term}
    return {i for term in terms for variant in (f" {term}", f" {term.capitalize()}")
            for i in tokenizer(variant, add_special_tokens=False)["input_ids"]}


def scores_of(texts: Sequence[str], scenes: Sequence) -> list[ReasoningScore]:
    """Each text scored against its scene record (true label, objects, key objects)."""
    return [score_reasoning(text, s.label, [o.kind for o in s.scene.objects], s.key_objects,
                            s.key_colours) for text, s in zip(texts, scenes)]


def label_accuracy(predicted: Sequence[str | None], truth: Sequence[str]) -> float:
    return mean(p == t for p, t in zip(predicted, truth))


def assess(model, tokenizer, scenes: Sequence, patches, references: Sequence[dict],
           label_names: Sequence[str], max_new_tokens: int, batch_size: int,
           system_prompt: str | None = None, desc: str = "", decoding=None,
           shuffled: bool = True) -> tuple[dict, list[dict]]:
    """Metrics and per-image rows of one model on test images.

    `scenes[i]` (a SceneRecord) is image i with patch grid `patches[i]`; `references[i]` is
    its fine-tuning record (the paper's prompt naming the true label, and the teacher's
    answer). Reasonings are generated for those prompts and scored against the scene
    graph; with `shuffled`, again with image i+1's patches (scored against image i's scene:
    the `*_shuffled` metrics). Generative classification asks the model to choose among
    all `label_names` without a hint; its reasonings are scored too (`generative_*`).
    Every pass decodes with `decoding` (an `infer.Decoding`; None: plain greedy).
    """
    from tinyemo.mmllm import infer

    def run(prompts, grid, what):
        return infer.generate(model, tokenizer, prompts, grid, max_new_tokens, batch_size,
                              system_prompt, f"{desc} {what}", decoding or infer.Decoding())

    prompts = [ref["conversations"][0]["value"] for ref in references]
    reasonings = run(prompts, patches, "reasoning")
    chosen_text = run([infer.generative_prompt(label_names)] * len(scenes), patches, "generative")
    chosen = infer.generative_labels(chosen_text, label_names)
    scores = scores_of(reasonings, scenes)
    metrics = summarize_reasonings(scores)
    metrics["rouge_l"] = rouge_l(reasonings, [ref["conversations"][1]["value"] for ref in references])
    metrics["generative_label_accuracy"] = label_accuracy(chosen, [s.label for s in scenes])
    metrics["generative_answers_without_label"] = mean(c is None for c in chosen)
    generative = summarize_reasonings(scores_of(chosen_text, scenes))
    for key in ("key_object_recall", "hallucination_rate", "objects_mentioned_per_reasoning"):
        metrics[f"generative_{key}"] = generative[key]
    if shuffled:
        other = run(prompts, patches.roll(-1, dims=0), "shuffled image")
        mixed = summarize_reasonings(scores_of(other, scenes))
        for key in ("key_object_recall", "hallucination_rate", "reasoning_names_correct_emotion"):
            metrics[f"{key}_shuffled"] = mixed[key]
    rows = [{"id": s.id, "label": s.label, "key_objects": s.key_objects, "reasoning": text,
             "mentioned": sorted(sc.mentioned), "hallucinated": sorted(sc.hallucinated),
             "generative_answer": gen, "generative_label": lab}
            for s, text, sc, gen, lab in zip(scenes, reasonings, scores, chosen_text, chosen)]
    return metrics, rows


def teacher_ceiling(scenes: Sequence, references: Sequence[dict]) -> dict[str, float]:
    """The teacher's own reference answers scored like the model's reasonings: the ceiling of
    every reasoning measure (the teacher read the scene graph, so it names what is there)."""
    answers = [ref["conversations"][1]["value"] for ref in references]
    return summarize_reasonings(scores_of(answers, scenes))
