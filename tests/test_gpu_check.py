"""benchmarks/gpu_check.py on a CPU: the script a reviewer runs on a GPU, at reduced depth."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_check_passes_on_a_reduced_openelm_and_prints_its_table(capsys):
    status = gpu_check().main([
        "--random-weights", "--allow-cpu", "--layers", "1", "--tower-layers", "2",
        "--steps", "6", "--images", "32", "--projector-steps", "30", "--micro-batch", "2",
        "--llm", "openelm-270m-instruct"])
    out = capsys.readouterr().out
    assert status == 0, out
    header, _, row = out.strip().splitlines()[-3:]
    cells = dict(zip(header.strip("| ").split(" | "), row.strip("| ").split(" | ")))
    assert cells["llm"] == "openelm-270m-instruct" and cells["status"] == "pass"
    assert cells["llm_checks"] == "pass" and cells["weights"] == "random"
    before, after = map(float, cells["held_out_loss"].split(" -> "))
    assert after < before and float(cells["image_reliance"]) > 0
    assert float(cells["generation_tokens_per_second"]) > 0


def test_a_rising_or_non_finite_loss_fails_the_check():
    module = gpu_check()
    module.finite_and_falling(2.0, 1.0, "ok")
    for first, last in ((1.0, 2.0), (1.0, float("nan")), (float("inf"), 1.0)):
        with pytest.raises(module.CheckFailed):
            module.finite_and_falling(first, last, "stage")


def test_without_cuda_it_says_so_and_exits_2(capsys):
    assert gpu_check().main(["--random-weights"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_the_memory_check_counts_each_paper_llms_published_parameters():
    counts = {name: gpu_check().parameter_count(name) for name in gpu_check().PAPER_LLMS}
    # published sizes: OpenELM 270M and 450M, TinyLlama 1.1B, Phi-2 2.7B
    for name, (low, high) in {"openelm-270m-instruct": (0.25e9, 0.30e9),
                              "openelm-450m-instruct": (0.42e9, 0.48e9),
                              "tinyllama-1.1b-chat": (1.0e9, 1.2e9),
                              "phi-2": (2.6e9, 2.9e9)}.items():
        assert low < counts[name] < high, (name, counts[name])
