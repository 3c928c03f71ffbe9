"""Semi-automated bias detection through the Metric Projector (stage `bias`).

- `concepts`: the concept bank (default `concepts.yaml`, extensible by a user file) and its
  anchors, built like the projector's emotion anchors; meaningless null phrases.
- `scores`: concept scores of projected images (cosine, z-scored, net of emotion scores).
- `association`: the stratified permutation test (beyond the true labels), BH/Holm.
- `analysis`: the concept and group lenses on one projector, scoring on known truth.
- `encoding`: rendered scenes through the vision tower as `encode` stored features (device,
  precision).
- `control`: the training split without its planted biases, and a projector trained on it.
- `counterfactual`: the same scene with and without an attribute value; flip rates.
- `probe`: which pairs the counterfactual probe tests, run on every projector; mean flip rates.
- `findings`: the ranked Markdown report and its figures.
"""
