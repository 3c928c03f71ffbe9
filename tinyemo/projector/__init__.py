"""The Metric Projector: model, anchors, losses, training, evaluation, baselines, artifacts."""

ABLATION_FACTORS = ("loss", "template", "synonyms", "source", "width")
