"""Where every stage reads and writes, relative to the repository root (never absolute)."""
from pathlib import Path

DATA = Path("data")
MODELS = Path("models")
RESULTS = Path("results")
REPORTS = Path("reports")
NOTEBOOKS = Path("notebooks")

BASE_MODELS = MODELS / "base"  # converted pretrained weights (stage `assets`)
EMOSCENES = DATA / "emoscenes"  # rendered images, scene graphs, conversations (`synthesize`)
FEATURES = DATA / "features"  # cached embeddings (`features`)


def stage_results(stage: str) -> Path:
    """The folder holding a stage's metrics, figures, executed notebook and provenance."""
    return RESULTS / stage
