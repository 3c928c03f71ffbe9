"""Parameter section `bias` (see profiles/default.yaml)."""
from typing import Literal

from pydantic import Field

from tinyemo.config import Section, register_section


class BiasParams(Section):
    alpha: float = Field(0.05, gt=0.0, lt=1.0)  # flag a pair when its corrected p is at most this
    correction: Literal["bh", "holm"] = "bh"  # Benjamini-Hochberg (FDR) or Holm (FWER)
    n_permutations: int = Field(20000, ge=100)  # within-label shuffles per test
    residualise: bool = True  # concept scores net of the emotion scores
    n_null_phrases: int = Field(2000, ge=200)  # meaningless phrases a concept must out-associate
    top_k: int = Field(5, ge=1)  # planted biases must rank among the top-k flagged pairs
    analysis_splits: list[Literal["val", "test"]] = ["val", "test"]  # unbiased EmoScenes splits analysed
    extra_concepts: str | None = None  # a .yaml or .txt file of concepts added to the bank
    n_counterfactual: int = Field(100, ge=1)  # test scenes per planted bias in the probe
    batch_size: int = Field(32, ge=1)  # vision-tower batch size
    emotion6_split: Literal["train", "val", "test"] = "val"  # held-out Emotion6 features analysed
    report_rows: int = Field(10, ge=1)  # rows per table in the report
    n_examples: int = Field(4, ge=0)  # example images per flagged pair in the report


register_section("bias", BiasParams)
