"""A teacher whose captions and reasonings are written by a causal language model.

The paper's teachers were large multimodal models told the correct label. `LLMTeacher` plays
that role with any transformers causal LM and its tokenizer (with a chat template): the
prompt lists the scene's facts (objects, colours, places, light, weather), the elements that
drive the label, and the label; the model writes the text, decoded greedily so the data set
is reproducible (an empty generation is replaced by the rule teacher's text and counted in
`fallbacks`, out of `generations`; `report()` and `summary()` put both in the stage's metrics
and notebook). Visual questions and sentiment answers stay factual (`RuleTeacher`'s), and
the answer's last line is always `Emotion: <label>`, whatever the model writes.
`make_teacher("rule" | <registry LLM name>, ...)` builds the teacher a profile names.
"""
from __future__ import annotations

import random

import torch

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


class LLMTeacher(RuleTeacher):
    def __init__(self, model, tokenizer, seed: int = 0, max_new_tokens: int = 160,
                 sample: bool = False, name: str = "llm"):
        super().__init__(seed)
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_new_tokens = max_new_tokens
        self.sample = sample  # greedy by default; sampling is seeded per record
        self.name = name
        self.generations = 0  # captions and reasonings asked of the model
        self.fallbacks = 0  # generations that came back empty and were replaced by rule text

    @torch.no_grad()
    def generate(self, prompt: str, rng: random.Random) -> str:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.model.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(rng.randrange(2**31))
            out = self.model.generate(
                **ids, max_new_tokens=self.max_new_tokens, do_sample=self.sample,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()

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
        return self._generate_or(CAPTION_PROMPT.format(facts=describe.facts(scene)), rng,
                                 lambda r: super(LLMTeacher, self).caption(scene, r))

    def reasoning(self, scene: Scene, label: str, rng: random.Random) -> str:
        key, colours = rules.key_elements(scene, label)
        named = [describe.group_of(scene, kind).phrase("definite") for kind in key[:3]]
        prompt = REASONING_PROMPT.format(
            facts=describe.facts(scene), label=label,
            key=describe.join(named + [f"the colours {describe.join(colours)}"] if colours else named)
            or "the overall atmosphere",
        )
        return self._generate_or(prompt, rng, lambda r: super(LLMTeacher, self).reasoning(scene, label, r))


def make_teacher(name: str, seed: int = 0) -> RuleTeacher:
    """`rule` -> RuleTeacher; a registry LLM name -> LLMTeacher with that model (tinyemo.models.llm)."""
    if name == "rule":
        return RuleTeacher(seed)
    from tinyemo.models import llm, registry

    registry.llm_spec(name)
    model, tokenizer = llm.load_llm(name)
    if torch.cuda.is_available():
        model = model.to("cuda", dtype=torch.float16)
    return LLMTeacher(model, tokenizer, seed=seed, name=name)
