"""A teacher whose captions and reasonings are written by a causal language model.

The paper's teachers were large multimodal models told the correct label. `LLMTeacher` plays
that role with any transformers causal LM and its tokenizer (with a chat template): the
prompt lists the scene's facts (objects, colours, places, light, weather), the elements that
drive the label, and the label; the model writes the text, decoded greedily so the data set
is reproducible (an empty generation is replaced by the rule teacher's text and counted in
`fallbacks`, out of `generations`; `report()` and `summary()` put both in the stage's metrics
and notebook). Visual questions and sentiment answers stay factual (`RuleTeacher`'s), and
the answer's last line is always `Emotion: <label>`, whatever the model writes.

Greedy texts are generated in batches: `prepare(records)` writes every caption and reasoning
the records will ask for, `batch_size` prompts at a time (similar lengths together, padded on
the left so every prompt ends where its answer starts), before the records are assembled.
`make_teacher("rule" | <registry LLM name>, ...)` builds the teacher a profile names, on the
GPU in bf16 when there is one (Phi-2's attention overflows in fp16), else on the CPU in
float32.
"""
from __future__ import annotations

import random

import torch
from tqdm.auto import tqdm

from tinyemo.scenes import describe, rules
from tinyemo.scenes.graph import Scene
from tinyemo.scenes.teacher import RuleTeacher, strip_answer_line

SYSTEM = "You describe images for a data set. Write plain, vivid English."
REASONING_PROMPT = (
    "An image shows:\n{facts}\n\nThe elements that make it feel {label}: {key}.\n"
    "In 3 to 5 sentences, in the first person, explain what you feel looking at it and why "
    "the depicted emotion is {label}. Mention the elements and their colours."
)
CAPTION_PROMPT = "An image shows:\n{facts}\n\nDescribe the image in two sentences."


def caption_prompt(scene: Scene) -> str:
    return CAPTION_PROMPT.format(facts=describe.facts(scene))


def reasoning_prompt(scene: Scene, label: str) -> str:
    key, colours = rules.key_elements(scene, label)
    named = [describe.group_of(scene, kind).phrase("definite") for kind in key[:3]]
    return REASONING_PROMPT.format(
        facts=describe.facts(scene), label=label,
        key=describe.join(named + [f"the colours {describe.join(colours)}"] if colours else named)
        or "the overall atmosphere",
    )


class LLMTeacher(RuleTeacher):
    def __init__(self, model, tokenizer, seed: int = 0, max_new_tokens: int = 160,
                 sample: bool = False, name: str = "llm", batch_size: int = 16):
        super().__init__(seed)
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_new_tokens = max_new_tokens
        self.sample = sample  # greedy by default; sampling is seeded per record (one at a time)
        self.name = name
        self.batch_size = batch_size  # greedy prompts generated together (`prepare`)
        self.generations = 0  # captions and reasonings asked of the model
        self.fallbacks = 0  # generations that came back empty and were replaced by rule text
        self.written: dict[str, str] = {}  # prompt -> text, generated ahead by `prepare`

    def _ids(self, prompt: str) -> list[int]:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                  tokenize=True, return_dict=True)["input_ids"]

    @torch.no_grad()
    def generate_batch(self, prompts: list[str]) -> list[str]:
        """The texts the model writes for `prompts`, in one left-padded batch."""
        batch = self.tokenizer.pad({"input_ids": [self._ids(p) for p in prompts]},
                                   padding_side="left", return_tensors="pt").to(self.model.device)
        out = self.model.generate(
            **batch, max_new_tokens=self.max_new_tokens, do_sample=self.sample,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        )
        new = out[:, batch["input_ids"].shape[1]:]
        return [text.strip() for text in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def generate(self, prompt: str, rng: random.Random) -> str:
        """The text for one prompt: written ahead by `prepare`, else generated now (with
        sampling, seeded by `rng`)."""
        seed = rng.randrange(2**31)  # drawn either way, so the record's later choices agree
        if prompt in self.written:
            return self.written[prompt]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.generate_batch([prompt])[0]

    def prepare(self, records) -> None:
        """Generate, in batches, the captions and reasonings `records` (SceneRecords) will ask
        for (greedy decoding only; sampled texts are seeded per record, so they are written
        one at a time)."""
        if self.sample:
            return
        wanted = {caption_prompt(r.scene) for r in records} | {
            reasoning_prompt(r.scene, r.label) for r in records}
        todo = sorted(wanted - set(self.written), key=lambda p: (len(self._ids(p)), p))
        for start in tqdm(range(0, len(todo), self.batch_size), desc="teacher batches", mininterval=5):
            chunk = todo[start:start + self.batch_size]
            self.written.update(zip(chunk, self.generate_batch(chunk)))

    def _generate_or(self, prompt: str, rng: random.Random, rule_text) -> str:
        """Generated text, or `rule_text(rng)` from the same rng state if it comes back empty."""
        state = rng.getstate()
        self.generations += 1
        text = strip_answer_line(self.generate(prompt, rng))
        if text:
            return text
        self.fallbacks += 1
        rng.setstate(state)
        return rule_text(rng)

    def caption(self, scene: Scene, rng: random.Random) -> str:
        return self._generate_or(caption_prompt(scene), rng,
                                 lambda r: super(LLMTeacher, self).caption(scene, r))

    def reasoning(self, scene: Scene, label: str, rng: random.Random) -> str:
        return self._generate_or(reasoning_prompt(scene, label), rng,
                                 lambda r: super(LLMTeacher, self).reasoning(scene, label, r))


def make_teacher(name: str, seed: int = 0) -> RuleTeacher:
    """`rule` -> RuleTeacher; a registry LLM name -> LLMTeacher with that model (tinyemo.models.llm)."""
    if name == "rule":
        return RuleTeacher(seed)
    from tinyemo.models import llm, registry

    registry.llm_spec(name)
    model, tokenizer = llm.load_llm(name)
    if torch.cuda.is_available():  # bf16: fp16 overflows in Phi-2's attention
        model = model.to("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
    return LLMTeacher(model, tokenizer, seed=seed, name=name)
