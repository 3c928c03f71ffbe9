"""Collect every stage's metrics, tables, figures and timings into `reports/`.

The report stage gathers what the other stages wrote into `results/<stage>/` (metrics.json,
Markdown tables and reports, figures, provenance) and writes `reports/README.md`, an index a
reviewer can read top to bottom; `reports/headlines.md`, the headline tables the repository's
README links to; and `reports/headlines.json`, the same numbers as the one small file
`dvc metrics show` lists. The stage never writes outside `reports/`: the committed `reports/`
folder is what a clone shows before anything has run.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tinyemo import paths
from tinyemo.mmllm import comparison
from tinyemo.stages import STAGES

# The numbers the README shows, per stage (flattened metric keys; absent keys are skipped).
HEADLINES: dict[str, list[str]] = {
    "assets": ["vision.top1_expected", "vision.expected_probability", "llm.continuation"],
    "synthesize": [
        "n_images", "noise_rate_test", "rule_accuracy_test", "bias_strength_train",
        "bias_strength_test", "reasoning_distinct_ratio", "teacher_fallbacks",
    ],
    "features": ["emoscenes.train.images_per_second"],
    "paper_table": ["wall_seconds"],
    "projector": [
        "emotion6.selection.selected", "emotion6.held_out_top1.test.shipped projector",
        "emotion6.held_out_top1.test.paper recipe", "emotion6.held_out_top1.test.logistic regression",
        "emotion6.held_out_top1.test.nearest centroid", "emotion6.held_out_top1.test.random anchors",
        "emotion6.held_out_top1.test.shipped minus logistic (points)",
        "emotion6.zeroshot.llm.held_out_top1", "emotion6.zeroshot.sentence.held_out_top1",
        "emotion6.zeroshot.random.held_out_top1",
        "emoscenes.selection.selected", "emoscenes.held_out_top1.test.shipped projector",
        "emoscenes.held_out_top1.test.paper recipe", "emoscenes.held_out_top1.test.logistic regression",
    ],
    "pretrain": ["connector", "val_loss_before", "val_loss_after", "image_reliance", "word_precision_val", "train_seconds"],
    "finetune": [
        "connector",
        "detached_label_accuracy",
        "generative_label_accuracy",
        "reasoning_names_correct_emotion",
        "key_object_recall",
        "key_object_recall_shuffled",
        "hallucination_rate",
        "image_reliance",
        "image_reliance_object_words",
        "rouge_l",
        "mlp2x_gelu.reasoning_names_correct_emotion",
        "mlp2x_gelu.key_object_recall",
        "mlp2x_gelu.key_object_recall_shuffled",
        "mlp2x_gelu.hallucination_rate",
        "mlp2x_gelu.image_reliance",
        "mlp2x_gelu.image_reliance_object_words",
        "mlp2x_gelu.rouge_l",
        "base_llm_reasoning_names_correct_emotion",
        "base_llm_key_object_recall",
        "base_llm_hallucination_rate",
        "base_llm_image_reliance",
        "vision_probe_key_object_recall",
        "vision_probe_false_object_rate",
        "train_seconds",
    ],
    "bias": [
        "planted_recall_top_k", "false_flags", "control_flags", "flip_toward_biased",
        "flip_toward_control",
    ],
}

def flatten(metrics: dict, prefix: str = "") -> dict:
    """Nested metrics as `a.b.c -> scalar`; lists and other non-scalars are left out."""
    flat = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[name] = value
    return flat


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return " ".join(str(value).split()).replace("|", "\\|")  # one line, no column breaks


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_value(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def stage_records(results: Path = paths.RESULTS) -> dict[str, dict]:
    """Per stage that has run, the report itself aside (its folder holds the previous
    report's run): its metrics and provenance (None where missing)."""
    records = {}
    for name in STAGES:
        folder = results / name
        if folder.is_dir() and name != "report":
            records[name] = {
                "metrics": read_json(folder / "metrics.json"),
                "provenance": read_json(folder / "provenance.json"),
                "folder": folder,
            }
    return records


def provenance_files(records: dict[str, dict]) -> list[Path]:
    """Each stage's provenance.json, then those of its sub-runs (e.g. ablation cells)."""
    files = []
    for record in records.values():
        folder = record["folder"]
        files += [f for f in [folder / "provenance.json"] if f.exists()]
        files += sorted(folder.glob("*/provenance.json"))
    return files


def timings_table(records: dict[str, dict]) -> str:
    rows, total = [], 0.0
    for path in provenance_files(records):
        prov = json.loads(path.read_text())
        total += prov["wall_time_s"]
        rows.append([prov["stage"], f"{prov['wall_time_s']:.1f}"])
    rows.append(["**total**", f"{total:.1f}"])
    return markdown_table(["stage", "wall time (s)"], rows)


def machine_line(records: dict[str, dict], profile: str) -> str:
    """Where and from which code the stages ran (every revision, when stages ran at several)."""
    provenances = [record["provenance"] for record in records.values() if record["provenance"]]
    if not provenances:
        return ""
    hw = provenances[0]["hardware"]
    commits = list(dict.fromkeys(prov["git"]["commit"][:10] for prov in provenances))
    states = [p["git"].get("dirty") for p in provenances]
    dirty = (" (with uncommitted changes)" if any(states) else
             " (uncommitted changes unknown: git could not be asked)" if None in states else "")
    revisions = (f"code revision `{commits[0]}`" if len(commits) == 1 else
                 "code revisions " + ", ".join(f"`{c}`" for c in commits)
                 + " (each stage's in its provenance.json)")
    return (f"Profile `{profile}`, measured on {hw['cpu']} ({hw['cpu_count']} cores, torch threads "
            f"{hw.get('torch_threads')}), {revisions}{dirty}.")


def headline_values(records: dict[str, dict], headlines: dict[str, list[str]]) -> list[list]:
    """[stage, key, value] for every headline key the stages wrote (absent keys skipped)."""
    rows = []
    for stage, keys in headlines.items():
        metrics = records.get(stage, {}).get("metrics")
        if not metrics:
            continue
        flat = flatten(metrics)
        rows += [[stage, key, flat[key]] for key in keys if key in flat]
    return rows


def headline_table(records: dict[str, dict], headlines: dict[str, list[str]]) -> str:
    rows = headline_values(records, headlines)
    return markdown_table(["stage", "metric", "value"], rows) if rows else ""


def copy_stage_outputs(records: dict[str, dict], out: Path) -> dict[str, list[str]]:
    """Copy each stage's metrics, Markdown and figures into `out/<stage>/`; list what came."""
    copied = {}
    for name, record in records.items():
        source, target = record["folder"], out / name
        target.mkdir(parents=True, exist_ok=True)
        files = []
        for item in sorted(source.iterdir()):
            if item.suffix in (".json", ".md", ".csv") and item.is_file():
                shutil.copy(item, target / item.name)
                files.append(item.name)
        if (source / "figures").is_dir():
            shutil.copytree(source / "figures", target / "figures", dirs_exist_ok=True)
            files += [f"figures/{f.name}" for f in sorted((source / "figures").iterdir())]
        copied[name] = files
    return copied


def write_index(records, copied, headlines, profile: str, out: Path) -> str:
    parts = [
        "# TinyEmo companion: results",
        "",
        "Generated by the `report` stage from what every stage wrote in `results/`.",
        "",
        "## Stage timings",
        "",
        machine_line(records, profile),
        "",
        timings_table(records),
        "",
        "## Headline numbers",
        "",
        headline_table(records, headlines),
        "",
        mmllm_table(records),
    ]
    for name, files in copied.items():
        parts += [f"## {name}", ""]
        metrics = records[name]["metrics"]
        if metrics:
            flat = flatten(metrics)
            parts += [markdown_table(["metric", "value"], [[k, v] for k, v in flat.items()]), ""]
        parts += [f"- [{f}]({name}/{f})" for f in files if f.endswith((".md", ".png", ".svg"))]
        if (records[name]["folder"] / "notebook.html").exists():  # kept once, beside the stage's results
            parts.append(f"- [executed notebook](../{records[name]['folder'].as_posix()}/notebook.html)")
        parts.append("")
    index = "\n".join(parts)
    (out / "README.md").write_text(index)
    return index


def mmllm_table(records: dict[str, dict]) -> str:
    """The MM-LLM's readers side by side (`tinyemo.mmllm.comparison`), from the finetune
    stage's metrics; empty before that stage has run."""
    metrics = records.get("finetune", {}).get("metrics")
    if not metrics:
        return ""
    header, rows = comparison.rows(metrics)
    return "\n".join(["## The MM-LLM side by side", "", comparison.__doc__.split("\n\n")[1]
                      .replace("\n", " "), "", markdown_table(header, rows), ""])


def headlines_page(records, headlines, profile: str) -> str:
    """The headline tables on one page (`reports/headlines.md`, linked from the README)."""
    return "\n".join([
        "# TinyEmo companion: headline results",
        "",
        "Generated by the `report` stage; every stage's full metrics are in [README.md](README.md).",
        "",
        machine_line(records, profile),
        "",
        timings_table(records),
        "",
        headline_table(records, headlines),
        "",
        mmllm_table(records),
    ])


def build(profile: str, headlines: dict[str, list[str]] = HEADLINES, out: Path = paths.REPORTS) -> dict:
    records = stage_records()
    out.mkdir(parents=True, exist_ok=True)
    copied = copy_stage_outputs(records, out)
    write_index(records, copied, headlines, profile, out)
    (out / "headlines.md").write_text(headlines_page(records, headlines, profile))
    values = {f"{stage}.{key}": value for stage, key, value in headline_values(records, headlines)}
    (out / "headlines.json").write_text(json.dumps(values, indent=1) + "\n")
    return {"stages_reported": list(records)}
