"""The report stage's assembly: flattening, timing tables, the README's marked section."""
import json

from tinyemo import report


def write_stage(root, name, metrics, wall):
    folder = root / "results" / name
    (folder / "figures").mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "figures" / "plot.png").write_bytes(b"png")
    provenance = {
        "stage": name,
        "wall_time_s": wall,
        "parameters": {},
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "hardware": {"cpu": "Test CPU", "cpu_count": 2, "torch_threads": 2},
    }
    (folder / "provenance.json").write_text(json.dumps(provenance))


def test_flatten_keeps_scalars_only():
    flat = report.flatten({"a": {"b": 1.5, "c": [1, 2]}, "d": "x", "e": None})
    assert flat == {"a.b": 1.5, "d": "x", "e": None}


def test_build_writes_the_index_and_headlines_into_reports_only(in_tmp):
    write_stage(in_tmp, "assets", {"sanity": {"top1_is_cat": True}}, 12.0)
    write_stage(in_tmp, "synthesize", {"n_images": 100, "note": "two\nlines | here"}, 30.5)
    (in_tmp / "results/synthesize/cell").mkdir()
    (in_tmp / "results/synthesize/cell/provenance.json").write_text(
        (in_tmp / "results/synthesize/provenance.json").read_text().replace('"synthesize"', '"synthesize@cell"')
    )
    readme = in_tmp / "README.md"
    readme.write_text("the project's own README\n")
    summary = report.build("smoke", {"synthesize": ["n_images", "note", "missing.key"]}, out=in_tmp / "reports")
    assert summary == {"stages_reported": ["assets", "synthesize"]}
    assert readme.read_text() == "the project's own README\n"
    text = (in_tmp / "reports/headlines.md").read_text()
    assert "| synthesize | 30.5 |" in text and "| synthesize@cell | 30.5 |" in text
    assert "Profile `smoke`, measured on Test CPU" in text
    assert "| **total** | 73.0 |" in text
    assert "| synthesize | note | two lines \\| here |" in text
    assert "| synthesize | n_images | 100 |" in text and "missing.key" not in text
    assert json.loads((in_tmp / "reports/headlines.json").read_text()) == {
        "synthesize.n_images": 100, "synthesize.note": "two\nlines | here"}
    assert (in_tmp / "reports/assets/figures/plot.png").exists()
    (in_tmp / "results/assets/notebook.html").write_text("<html></html>")
    report.build("smoke", {}, out=in_tmp / "reports")
    assert not list((in_tmp / "reports").rglob("*.html")), "executed notebooks stay in results/ only"
    index = (in_tmp / "reports/README.md").read_text()
    assert "(../results/assets/notebook.html)" in index
    assert "sanity.top1_is_cat" in index and "Test CPU" in index


def test_the_report_leaves_itself_out_and_names_every_code_revision_the_stages_ran_at(in_tmp):
    write_stage(in_tmp, "assets", {}, 1.0)
    write_stage(in_tmp, "bias", {}, 1.0)
    write_stage(in_tmp, "report", {}, 1.0)
    earlier = in_tmp / "results/report/provenance.json"
    earlier.write_text(earlier.read_text().replace("0123456789abcdef", "aaaaaaaaaaaaaaaa")
                       .replace('"dirty": false', '"dirty": true'))
    records = report.stage_records()
    assert "report" not in records
    assert "code revision `0123456789`." in report.machine_line(records, "smoke")
    later = in_tmp / "results/bias/provenance.json"
    later.write_text(later.read_text().replace("0123456789abcdef", "fedcba9876543210"))
    line = report.machine_line(report.stage_records(), "smoke")
    assert "code revisions `0123456789`, `fedcba9876`" in line and "uncommitted" not in line


def test_the_machine_line_says_when_git_could_not_be_asked(in_tmp):
    write_stage(in_tmp, "assets", {}, 1.0)
    record = in_tmp / "results/assets/provenance.json"
    record.write_text(record.read_text().replace('"dirty": false', '"dirty": null'))
    line = report.machine_line(report.stage_records(), "smoke")
    assert "uncommitted changes unknown" in line


def test_the_mmllm_readers_stand_side_by_side_from_the_finetune_metrics(in_tmp):
    metrics = {"eval_images": 24, "base_eval_images": 12, "connector": "word_grounded",
               "reference_connector": "mlp2x_gelu", "key_object_recall": 0.4,
               "image_token_key_object_recall": 0.66, "hallucination_rate": 0.2,
               "oracle_key_object_recall": 0.5, "teacher_key_object_recall": 0.9,
               "vision_probe_key_object_recall": 0.78, "vision_probe_false_object_rate": 0.08,
               "base_llm_key_object_recall": 0.54, "mlp2x_gelu": {"key_object_recall": 0.2}}
    write_stage(in_tmp, "finetune", metrics, 10.0)
    report.build("smoke", {}, out=in_tmp / "reports")
    text = (in_tmp / "reports/headlines.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| measure |"))
    assert header == ("| measure | teacher (24 images) | patch probe (all test images) | "
                      "oracle: true words as image tokens (24 images) | fine-tuned, word_grounded "
                      "(24 images) | fine-tuned, mlp2x_gelu (24 images) | base LLM (12 images) |")
    assert "| key_object_recall | 0.9 | 0.78 | 0.5 | 0.4 | 0.2 | 0.54 |" in text
    assert "| image_token_key_object_recall |  |  |  | 0.66 |  |  |" in text
    assert "| hallucination_rate |  | 0.08 |  | 0.2 |  |  |" in text
    assert "side by side" in (in_tmp / "reports/README.md").read_text()
