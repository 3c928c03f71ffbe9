"""Inference in the two modes, batched or streamed.

- *detached* (the paper's design): the Metric Projector classifies; its top label and the
  runners-up fill the paper's instruction ("... Labels: [a, b, c] ... the correct label is
  a"), and the LLM only writes the reasoning.
- *generative*: the same instruction without the hint, listing every label; the LLM must
  choose, and its final `Emotion: <label>` line is read back as the prediction.

Decoding is greedy with a `max_new_tokens` cap and the settings of a `Decoding`: a
repetition penalty (transformers' `repetition_penalty`; 1.0 = none), blocked repeats of
n-grams (`no_repeat_ngram_size`; 0 = none) and, for connectors whose image tokens are words,
word-grounded decoding (`grounded_decoding`: only objects the image tokens show can be
named). The finetune stage saves its settings beside the model, so `tinyemo explain`
decodes as the stage measured.

Prompts are batched with left padding (every prompt ends where generation starts) and
run where the model is, in the precision it was trained in (`tinyemo.devices.inference`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from threading import Thread
from typing import Iterator, Sequence

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList

from tinyemo.devices import inference, model_device
from tinyemo.mmllm import grounded_decoding
from tinyemo.mmllm.data import collate, image_input, pad_id_of, to_device
from tinyemo.mmllm.prompts import IMAGE_PLACEHOLDER, encode_prompt
from tinyemo.scenes.teacher import FINETUNE_INSTRUCTION, finetune_prompt, parse_emotion

HINT = "\n\nImportant:"


@dataclass(frozen=True)
class Decoding:
    repetition_penalty: float = 1.0  # > 1 discourages repeated tokens
    no_repeat_ngram_size: int = 0  # n-grams that may not occur twice (0: none)
    grounded: bool = False  # name only objects the image tokens show

    @classmethod
    def of(cls, params) -> "Decoding":
        """The finetune params' decoding settings."""
        return cls(params.repetition_penalty, params.no_repeat_ngram_size, params.grounded_decoding)

    @classmethod
    def saved(cls, config: dict) -> "Decoding":
        """The settings a saved MM-LLM was measured with (models saved before `decoding` was
        recorded: their repetition penalty alone)."""
        if "decoding" in config:
            return cls(**config["decoding"])
        return cls(config.get("repetition_penalty", 1.0))

    def as_dict(self) -> dict:
        return asdict(self)


def with_image(text: str) -> str:
    return f"{IMAGE_PLACEHOLDER}\n{text}"


def detached_prompt(label: str, options: Sequence[str]) -> str:
    """The paper's instruction naming the projector's label as the correct one."""
    return with_image(finetune_prompt(list(options), label))


def generative_prompt(options: Sequence[str]) -> str:
    """The instruction without the hint: the LLM chooses among `options` itself."""
    return with_image(FINETUNE_INSTRUCTION.split(HINT)[0].format(options=", ".join(options)))


def projector_options(projector, pooled: torch.Tensor, k: int = 3):
    """Per image: (top label, its cosine score, the top-k labels as the prompt's options)."""
    ids, scores = projector.topk(pooled, k)
    names = projector.label_names
    return [(names[row[0]], float(score[0]), [names[i] for i in row])
            for row, score in zip(ids.tolist(), scores)]


def _gen_kwargs(model, tokenizer, images: torch.Tensor, decoding: Decoding) -> dict:
    kwargs = {"pad_token_id": pad_id_of(tokenizer), "eos_token_id": tokenizer.eos_token_id,
              "repetition_penalty": decoding.repetition_penalty}
    if decoding.no_repeat_ngram_size:
        kwargs["no_repeat_ngram_size"] = decoding.no_repeat_ngram_size
    constraint = grounded_decoding.processor(model, tokenizer, images) if decoding.grounded else None
    if constraint is not None:
        kwargs["logits_processor"] = LogitsProcessorList([constraint])
    return kwargs


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], patches: torch.Tensor, max_new_tokens: int,
             batch_size: int = 16, system_prompt: str | None = None, desc: str = "generate",
             decoding: Decoding = Decoding()) -> list[str]:
    """Greedy answers to `prompts` (each with one `<image>`), image i with patches[i]."""
    if len(prompts) != len(patches):
        raise ValueError(f"{len(prompts)} prompts for {len(patches)} images")
    answers: list[str] = []
    device = model_device(model)
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, mininterval=5):
        chunk = prompts[start:start + batch_size]
        ids = [encode_prompt(tokenizer, p, model.n_image_tokens, system_prompt) for p in chunk]
        batch = to_device(collate(ids, pad_id_of(tokenizer), padding_side="left"), device)
        images = image_input(patches[start:start + batch_size]).to(device)
        with inference(model):
            out = model.generate(batch["input_ids"], images, batch["attention_mask"],
                                 max_new_tokens, **_gen_kwargs(model, tokenizer, images, decoding))
        answers += tokenizer.batch_decode(out, skip_special_tokens=True)
    return [a.strip() for a in answers]


def stream(model, tokenizer, prompt: str, patches: torch.Tensor, max_new_tokens: int,
           system_prompt: str | None = None, decoding: Decoding = Decoding()) -> Iterator[str]:
    """The answer to one prompt, piece by piece as the tokens are generated."""
    from transformers import TextIteratorStreamer

    ids = encode_prompt(tokenizer, prompt, model.n_image_tokens, system_prompt)
    device = model_device(model)
    batch = to_device(collate([ids], pad_id_of(tokenizer), padding_side="left"), device)
    image = image_input(patches).reshape(1, *patches.shape[-2:]).to(device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=False, skip_special_tokens=True)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with inference(model):  # autocast is per thread: entered in the one that decodes
                model.generate(
                    input_ids=batch["input_ids"],
                    patches=image, attention_mask=batch["attention_mask"],
                    max_new_tokens=max_new_tokens, streamer=streamer,
                    **_gen_kwargs(model, tokenizer, image, decoding))
        except BaseException as err:  # ends the stream, raised again in the caller
            failure.append(err)
            streamer.end()

    worker = Thread(target=work)
    worker.start()
    yield from streamer
    worker.join()
    if failure:
        raise failure[0]


def generative_labels(answers: list[str], label_names: Sequence[str]) -> list[str | None]:
    """The label each answer ends with (None when it names no valid label)."""
    return [parse_emotion(answer, tuple(label_names)) for answer in answers]
