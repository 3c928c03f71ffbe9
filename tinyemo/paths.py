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
MMLLM_MODELS = MODELS / "mmllm"  # trained MM-LLMs, one folder per stage (`pretrain`, `finetune`)
# the MM-LLM stages' resumable work (checkpoints, tokenised records, the finished model's
# copy), outside their DVC outputs: kept when a stage fails, removed when it succeeds
CHECKPOINTS = MMLLM_MODELS / "checkpoints"


def stage_results(stage: str) -> Path:
    """The folder holding a stage's metrics, figures, executed notebook and provenance."""
    return RESULTS / stage


def stage_checkpoints(stage: str) -> Path:
    """The resumable work of stage `stage` (see CHECKPOINTS)."""
    return CHECKPOINTS / stage
