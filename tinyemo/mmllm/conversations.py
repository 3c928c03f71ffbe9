"""How a conversation becomes one string: TinyLLaVA's prompt recipe, written down in one place.

TinyLLaVA (whose fork the paper's MM-LLM is) renders a LLaVA record with a *conversation
template* chosen per LLM (`--conv_version`), not with the LLM's own chat template:

- `plain` (TinyLLaVA's `pretrain` template, stage 1): the image and its caption, nothing
  else. The human turn is dropped; the text is `<image>` + caption + `\\n`, and the loss
  covers the caption.
- `tinyllava` (TinyLLaVA's `llama` template, used for OpenELM and TinyLlama, and its `phi`
  template, used for Phi-2: the two differ only in their end-of-sequence token, so here they
  are one): a system sentence, then `USER: <image>\\n{question} ASSISTANT: {answer}{eos}`
  per round, the image moved to the front of its turn. Generation starts after `ASSISTANT:`.
- `chat`: the LLM's own chat template (SmolLM2's ChatML in the default profile).

`auto` picks the LLM's registry entry (`LLMSpec.conversation`): `tinyllava` for the paper's
LLMs, `chat` for the others. The chosen template is put on the tokenizer
(`use_conversation`), so every place that renders a prompt (training records, held-out
losses, generation, `tinyemo explain`) renders it the same way, and it is saved beside the
model. A beginning-of-sequence token is added where the LLM's tokenizer adds one itself
(Llama-2's `<s>` for OpenELM and TinyLlama; none for Phi-2 and SmolLM2), as TinyLLaVA's
tokenizer calls do: see `tinyemo.mmllm.prompts`.
"""
from __future__ import annotations

from tinyemo.errors import TinyEmoError
from tinyemo.models import registry

# TinyLLaVA's system sentence (its llama and phi templates), itself LLaVA-v1's.
TINYLLAVA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions."
)

TINYLLAVA = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}{{ \"" + TINYLLAVA_SYSTEM + " \" }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{ message['content'] + ' ' if message['content'] else '' }}"
    "{%- elif message['role'] == 'user' and '<image>' in message['content'] -%}"
    "{{ 'USER: <image>\n' + message['content'].replace('<image>', '').strip() + ' ' }}"
    "{%- elif message['role'] == 'user' -%}{{ 'USER: ' + message['content'] + ' ' }}"
    "{%- else -%}{{ 'ASSISTANT: ' + message['content'] + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)
PLAIN = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{ '<image>' }}"
    "{%- elif message['role'] == 'assistant' -%}{{ message['content'] + '\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)
TEMPLATES = {"tinyllava": TINYLLAVA, "plain": PLAIN, "chat": None}  # None: the tokenizer's own
CONVERSATIONS = ("auto", *TEMPLATES)


class UnknownConversationError(ValueError, TinyEmoError):
    """A conversation template name that is not one of `CONVERSATIONS`."""


def resolve(conversation: str, llm: str) -> str:
    """The template a parameter value means for `llm` (`auto`: the registry's choice)."""
    if conversation not in CONVERSATIONS:
        raise UnknownConversationError(
            f"unknown conversation template {conversation!r}; valid: {', '.join(CONVERSATIONS)}")
    if conversation == "auto":
        return registry.llm_spec(llm).conversation
    return conversation


def use_conversation(tokenizer, conversation: str) -> None:
    """Make `tokenizer` render prompts with the resolved template `conversation`."""
    if conversation not in TEMPLATES:
        raise UnknownConversationError(
            f"conversation template {conversation!r} is not resolved; valid: {', '.join(TEMPLATES)}")
    if TEMPLATES[conversation] is not None:
        if conversation == "tinyllava" and not tokenizer.eos_token:
            raise UnknownConversationError(
                "the tinyllava conversation ends each answer with the tokenizer's "
                "end-of-sequence token, and this tokenizer has none; set `eos_token` or use "
                "`conversation: chat`")
        tokenizer.chat_template = TEMPLATES[conversation]
