"""The MM-LLM side by side: every measured reader of the test images in one table.

Columns run from the ceiling to the floor, each read from the `finetune` stage's
metrics.json: the teacher's reference answers (it read the scene graph), the two probes of
what the patch features carry, the fine-tuned LLM shown each image's own caption words as
its image tokens (the oracle), the fine-tuned connectors (the default one also decoded
without `grounded_decoding`), and the base LLM before fine-tuning. Rows are the measures
they share; `image_token_key_object_recall` is the share of key objects among the words the
LLM is shown (word-grounded tokens only), the most it can name from the image rather than
guess from the label. A blank cell is a measure that does not apply to that column.
"""
from __future__ import annotations

MEASURES = (
    "reasoning_names_correct_emotion",
    "key_object_recall",
    "image_token_key_object_recall",
    "key_object_recall_shuffled",
    "hallucination_rate",
    "image_reliance",
    "image_reliance_object_words",
)


def _prefixed(metrics: dict, prefix: str) -> dict:
    return {m: metrics[prefix + m] for m in MEASURES if prefix + m in metrics}


def columns(metrics: dict) -> dict[str, dict[str, float]]:
    """{column title: {measure: value}} from the finetune stage's metrics (absent sources
    are left out)."""
    n, n_base = metrics["eval_images"], metrics["base_eval_images"]
    connector = metrics["connector"]
    reference = metrics.get("reference_connector")
    found = {
        f"teacher ({n} images)": _prefixed(metrics, "teacher_"),
        "patch probe (all test images)": {
            "key_object_recall": metrics.get("vision_probe_key_object_recall"),
            "hallucination_rate": metrics.get("vision_probe_false_object_rate")},
        "linear probe (all test images)": {
            "key_object_recall": metrics.get("vision_probe_linear_key_object_recall"),
            "hallucination_rate": metrics.get("vision_probe_linear_false_object_rate")},
        f"oracle: true words as image tokens ({n} images)": _prefixed(metrics, "oracle_"),
        f"fine-tuned, {connector} ({n} images)": _prefixed(metrics, ""),
        f"fine-tuned, {connector}, free decoding ({n} images)": _prefixed(metrics, "free_decoding_"),
        f"fine-tuned, {reference} ({n} images)": _prefixed(metrics.get(reference) or {}, ""),
        f"fine-tuned, {connector} ({n_base} images)": _prefixed(metrics, "on_base_images_"),
        f"base LLM ({n_base} images)": _prefixed(metrics, "base_llm_"),
    }
    return {title: {k: v for k, v in column.items() if v is not None}
            for title, column in found.items() if any(v is not None for v in column.values())}


def rows(metrics: dict) -> tuple[list[str], list[list]]:
    """(header, rows) of the table with a row per measure and a column per reader."""
    table = columns(metrics)
    header = ["measure", *table]
    body = [[measure, *(column.get(measure, "") for column in table.values())]
            for measure in MEASURES]
    return header, body
