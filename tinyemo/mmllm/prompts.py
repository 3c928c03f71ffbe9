"""Conversation prompts with an image placeholder, tokenised with answer-only labels.

A LLaVA record's human turn holds `<image>`; the tokenizer's chat template renders the turns
(the conversation template `tinyemo.mmllm.conversations` put there: TinyLLaVA's, or the
LLM's own), a beginning-of-sequence token leads where the LLM's tokenizer adds one itself,
and the placeholder becomes `n_image_tokens` positions holding `IMAGE_TOKEN_ID`, which the
model later fills with the connector's image tokens. Labels are `IGNORE` everywhere except
the assistant's answers (including the template's end-of-turn marker, so the model learns
to stop).
"""
from __future__ import annotations

from dataclasses import dataclass

IMAGE_PLACEHOLDER = "<image>"
IMAGE_TOKEN_ID = -200  # never a vocabulary id; marks where image tokens go
IGNORE = -100  # label of positions that carry no loss

ROLES = {"human": "user", "gpt": "assistant", "system": "system",
         "user": "user", "assistant": "assistant"}


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]


def to_messages(conversations: list[dict], system_prompt: str | None = None) -> list[dict]:
    """LLaVA turns ({from, value}) as chat messages ({role, content})."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    for turn in conversations:
        speaker = turn.get("from", turn.get("role"))
        if speaker not in ROLES:
            raise ValueError(f"unknown speaker {speaker!r} in a conversation; expected human or gpt")
        messages.append({"role": ROLES[speaker], "content": turn.get("value", turn.get("content"))})
    return messages


def bos_ids(tokenizer) -> list[int]:
    """[BOS id] where the tokenizer adds a beginning-of-sequence token by itself (Llama-2's
    `<s>`), [] where it adds none (Phi-2, SmolLM2): what TinyLLaVA's tokenizer calls give."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    return [bos] if tokenizer("a")["input_ids"][:1] == [bos] else []


def _with_bos(tokenizer, ids: list[int]) -> list[int]:
    lead = bos_ids(tokenizer)
    return ids if not lead or ids[:1] == lead else lead + ids


def render(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; give the MM-LLM a conversation "
                         "template (`conversation: tinyllava`) or a chat LLM")
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def tokenize_text(tokenizer, text: str, n_image_tokens: int) -> list[int]:
    """Token ids of rendered text, each `<image>` expanded to `n_image_tokens` markers."""
    ids: list[int] = []
    for index, part in enumerate(text.split(IMAGE_PLACEHOLDER)):
        if index:
            ids.extend([IMAGE_TOKEN_ID] * n_image_tokens)
        if part:
            ids.extend(tokenizer(part, add_special_tokens=False)["input_ids"])
    return ids


def encode_conversation(
    tokenizer, conversations: list[dict], n_image_tokens: int,
    system_prompt: str | None = None, max_length: int | None = None,
) -> Encoded:
    """Token ids and answer-only labels of a whole conversation."""
    messages = to_messages(conversations, system_prompt)
    input_ids: list[int] = []
    labels: list[int] = []
    consumed = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render(tokenizer, messages[:index], add_generation_prompt=True)
        full = render(tokenizer, messages[: index + 1], add_generation_prompt=False)
        if not (prefix.startswith(consumed) and full.startswith(prefix)):
            raise ValueError(
                "the chat template does not render turns as prefixes of each other; "
                "answer-only labels cannot be located"
            )
        prompt_ids = tokenize_text(tokenizer, prefix[len(consumed):], n_image_tokens)
        if not consumed:
            prompt_ids = _with_bos(tokenizer, prompt_ids)
        answer_ids = tokenize_text(tokenizer, full[len(prefix):], n_image_tokens)
        input_ids += prompt_ids + answer_ids
        labels += [IGNORE] * len(prompt_ids) + answer_ids
        consumed = full
    if not any(label != IGNORE for label in labels):
        raise ValueError("the conversation has no assistant answer to learn from")
    if max_length is not None and len(input_ids) > max_length:
        n_image = input_ids[:max_length].count(IMAGE_TOKEN_ID)
        if n_image not in (0, input_ids.count(IMAGE_TOKEN_ID)):
            raise ValueError(f"max_length {max_length} would cut through the image tokens")
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return Encoded(input_ids, labels)


def encode_prompt(tokenizer, question: str, n_image_tokens: int,
                  system_prompt: str | None = None) -> list[int]:
    """Token ids of a question, ready for the assistant to answer (generation prompt)."""
    messages = to_messages([{"from": "human", "value": question}], system_prompt)
    return _with_bos(tokenizer, tokenize_text(tokenizer, render(tokenizer, messages, True),
                                              n_image_tokens))
