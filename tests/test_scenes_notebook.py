"""The synthesize notebook, executed by the stage runner on the smoke profile."""
from tinyemo.scenes import records


def test_synthesize_notebook_writes_data_metrics_and_figures(smoke):
    root = smoke.run_through("synthesize")
    metrics = smoke.metrics("synthesize")
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (64, 24, 24)
    assert metrics["n_images"] == 112
    assert metrics["n_pretrain_records_train"] == 3 * 64 and metrics["n_finetune_records_train"] == 64
    assert all(sum(c.values()) == metrics[f"n_{s}"] for s, c in metrics["counts"].items())
    assert 0.0 <= metrics["noise_rate_train"] <= 0.3  # parameter 0.1, 64 images
    assert 0.6 <= metrics["rule_accuracy_test"] <= 1.0
    assert metrics["reasoning_distinct_ratio"] >= 0.95 and metrics["reasoning_label_parsed"] == 1.0
    assert 25 <= metrics["reasoning_mean_words"] <= 150
    bias = metrics["planted_biases"][0]
    assert bias["p_value_given_emotion_train"] >= 0.6  # planted with strength 0.9
    assert bias["p_value_given_emotion_train"] > bias["p_value_given_other_train"]
    assert metrics["render_images_per_second"] > 20
    assert (metrics["teacher_generations"], metrics["teacher_fallbacks"]) == (0, 0)  # rule teacher
    for name in ("samples.png", "class_counts.png", "counterfactual.png"):
        assert (root / "results/synthesize/figures" / name).stat().st_size > 5_000
    loaded = records.load_scene_records(root / "data/emoscenes", "test")
    assert len(loaded) == 24 and all(r.image_path(root / "data/emoscenes").exists() for r in loaded)
    assert (root / "results/synthesize/notebook.html").exists()
