"""The MM-LLM stages end to end (smoke profile), multi-process training, `tinyemo explain`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import working_directory
from tinyemo.cli import main

pytestmark = pytest.mark.slow


def test_pretrain_stage_trains_the_connector(smoke):
    root = smoke.run_through("pretrain")
    metrics = smoke.metrics("pretrain")
    assert metrics["steps"] == 4 and metrics["records"] == 16
    assert metrics["val_loss_after"] < metrics["val_loss_before"]
    assert metrics["trainable_parameters"] < metrics["total_parameters"] / 5
    assert (root / "results/pretrain/loss.csv").read_text().count("\n") == 1 + metrics["steps"]
    model = root / "models/mmllm/pretrain"
    assert {p.name for p in model.iterdir()} == {"mmllm.json", "weights.safetensors", "training.json"}


def test_finetune_stage_writes_the_evaluation(smoke):
    root = smoke.run_through("finetune")
    metrics = smoke.metrics("finetune")
    assert metrics["records"] == 16 + 4  # instruct records and the caption records mixed in
    assert metrics["steps"] == 5 and metrics["eval_images"] == 6 and metrics["base_eval_images"] == 3
    probe = [metrics[f"vision_probe_{k}"] for k in ("key_object_recall", "false_object_rate")]
    assert all(0.0 <= value <= 1.0 for value in probe), probe
    assert (root / "results/finetune/figures/reasonings.png").stat().st_size > 10_000
    rows = [json.loads(line) for line in (root / "results/finetune/samples.jsonl").open()]
    assert len(rows) == 6 and all(isinstance(row["reasoning"], str) for row in rows)
    # the accuracies, recomputed here from the per-image outputs and from the saved projector
    generative = sum(row["generative_label"] == row["label"] for row in rows) / len(rows)
    assert metrics["generative_label_accuracy"] == pytest.approx(generative, abs=1e-4)
    from tinyemo.feature_store import load_features
    from tinyemo.projector.artifact import load_projector

    with working_directory(root):
        test = load_features("emoscenes", "test")
    projector = load_projector(root / "models/projector/emoscenes")
    index = {image_id: i for i, image_id in enumerate(test.ids)}
    predicted, _ = projector.predict(test.pooled[[index[row["id"]] for row in rows]])
    detached = sum(projector.label_names[int(p)] == row["label"] for p, row in zip(predicted, rows)) / len(rows)
    assert metrics["detached_label_accuracy"] == pytest.approx(detached, abs=1e-4)
    assert not (root / "models/mmllm/checkpoints/finetune").exists()


def test_training_runs_on_two_processes_with_accelerate(smoke, tmp_path):
    root = smoke.run_through("pretrain")
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "tinyemo.mmllm.launch",
               "pretrain", "--max-steps", "2", "--out", str(tmp_path / "model")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["steps"] == 2 and summary["samples"] == 8
    assert (tmp_path / "model/weights.safetensors").exists()


def test_explain_streams_a_reasoning_and_rejects_bad_images(smoke, capsys, tmp_path):
    root = smoke.run_through("finetune")
    images = sorted((root / "data/emoscenes/images/test").glob("*.png"))[:2]
    with working_directory(root):
        assert main(["explain", *map(str, images), "--max-new-tokens", "8"]) == 0
        out = capsys.readouterr().out
        assert all(f"{image}: " in out for image in images)
        assert main(["explain", str(images[0]), "--json", "--max-new-tokens", "8"]) == 0
        record = json.loads(capsys.readouterr().out)[0]
        assert record["label"] == record["options"][0]["label"] and len(record["options"]) == 3
        # the projector's verdict is the one `tinyemo classify` gives for the same image
        assert main(["classify", str(images[0]), "--json"]) == 0
        classified = json.loads(capsys.readouterr().out)["results"][0]
        assert [o["label"] for o in record["options"]] == [t["label"] for t in classified["top"]]
        assert record["score"] == pytest.approx(classified["top"][0]["score"], abs=1e-3)
        # greedy decoding: the streamed reasoning is the JSON one
        streamed = out.split(f"{images[1]}: ")[0].split("\n", 1)[1]
        assert streamed.strip() == record["reasoning"].strip()
        bad = tmp_path / "broken.png"
        bad.write_text("not an image")
        assert main(["explain", str(bad)]) == 2
        assert "is not a readable image" in capsys.readouterr().err
        assert main(["explain", str(images[0]), "--model", str(tmp_path / "none")]) == 2
        assert "run `dvc repro finetune`" in capsys.readouterr().err


def test_finetuning_twice_gives_the_same_weights(smoke, tmp_path):
    """The LoRA adapters' initial weights are seeded: a rerun reproduces the model."""
    from safetensors.torch import load_file

    from tinyemo import config
    from tinyemo.mmllm import artifact, stage_runs

    root = smoke.run_through("pretrain")
    with working_directory(root):
        sections = config.load_params(config.PARAMS_FILE)
        for run in ("a", "b"):
            stage_runs.finetune_run(sections["base"], sections["finetune"], artifact.MODEL_DIR / "pretrain",
                                 tmp_path / run, max_steps=2)
    first, second = (load_file(tmp_path / run / artifact.WEIGHTS_FILE) for run in ("a", "b"))
    assert first.keys() == second.keys() and any("lora_" in name for name in first)
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_an_evaluation_that_fails_loses_no_training(smoke):
    """The finetune stage through the runner, its evaluation failing after training (the
    projector it reads is broken): the fine-tuned model is kept, and a rerun, after DVC has
    cleared the stage's outputs, takes the finished model instead of training again."""
    import shutil

    from tinyemo import runner
    from tinyemo.mmllm import artifact

    root = smoke.run_through("finetune")
    model = root / "models/mmllm/finetune"
    projector = root / "models/projector/emoscenes/config.json"
    kept_text = projector.read_text()
    shutil.rmtree(model)  # as `dvc repro` does before running the stage
    projector.unlink()
    try:
        with working_directory(root), pytest.raises(runner.StageError) as err:
            runner.run("finetune")
    finally:
        projector.write_text(kept_text)
    message = str(err.value)
    assert "projector" in message and "models/mmllm/finetune" in message and "are kept" in message
    record = artifact.training_record(model)
    assert record["result"]["steps"] == 5 and not (root / "results/finetune/metrics.json").exists()
    shutil.rmtree(model)  # `dvc repro` again: the copy in the stage's checkpoint folder remains
    with working_directory(root):
        runner.run("finetune")
    metrics = smoke.metrics("finetune")
    assert metrics["steps"] == 5 and metrics["train_seconds"] == round(record["result"]["seconds"], 1)
    assert "training skipped" in (root / "results/finetune/notebook.ipynb").read_text()
    assert not (root / "models/mmllm/checkpoints/finetune").exists()
