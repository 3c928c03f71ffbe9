"""Parameter sections `pretrain` and `finetune` (see profiles/default.yaml for each knob)."""
from typing import Literal

from pydantic import Field, model_validator

from tinyemo.config import Section, register_section


class TrainingParams(Section):
    n_records: int | None = Field(None, ge=1)  # seeded subset of the training records (None: all)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)  # global batch, split across processes
    lr: float = Field(gt=0)  # peak learning rate, cosine decay
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    max_length: int = Field(256, ge=8)  # tokens per record, image tokens included
    checkpoint_every: int = Field(25, ge=0)  # steps between resumable checkpoints (0: none)
    conversation: Literal["auto", "chat", "tinyllava", "plain"] = "auto"  # prompt template (auto: the LLM's)
    system_prompt: str | None = None  # None: the conversation template's own default

    # Devices and scale (accelerate): global batch = micro batch x processes x accumulation
    gradient_accumulation_steps: int = Field(1, ge=1)  # micro batches per optimizer step and process
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # autocast of the forward pass
    gradient_checkpointing: bool = False  # recompute LLM activations in the backward pass
    num_processes: int = Field(1, ge=1)  # >1: the stage trains under `accelerate launch`
    accelerate_config: str | None = None  # configs/accelerate/*.yaml for those processes
    num_workers: int = Field(0, ge=0)  # DataLoader processes tokenising records (0: none)

    # The paper's records instead of EmoScenes' (tinyemo.mmllm.records); None: EmoScenes
    records_file: str | None = None  # LLaVA-format JSON list, or a folder holding exactly one
    records_features: str | None = None  # the `encode` folder of its images (data/features/webemo/train)

    def _records_conflicts(self) -> list[str]:
        """Settings that read EmoScenes records, whose images a records file's features lack."""
        return []

    @model_validator(mode="after")
    def _records_pair(self):
        if (self.records_file is None) != (self.records_features is None):
            raise ValueError("records_file and records_features go together: set both (the "
                             "records and the feature folder of their images) or neither")
        conflicts = self._records_conflicts() if self.records_file else []
        if conflicts:
            raise ValueError(f"with a records_file, {', '.join(conflicts)} cannot be used: it "
                             "reads EmoScenes records, whose images have no features there "
                             "(connector: mlp2x_gelu or linear, records: all, caption_records: 0, "
                             "reference_connector: null)")
        return self


class PretrainParams(TrainingParams):
    n_records: int | None = Field(None, ge=0)  # LLM-in-the-loop records (None: all; 0: no such steps)
    records: Literal["all", "captions"] = "all"  # which pre-training records (captions: only those)
    connector: Literal["mlp2x_gelu", "linear", "word_grounded"] = "mlp2x_gelu"
    match_word_norm: bool = False  # free connectors: start with tokens of word-embedding norm
    top_k: int = Field(0, ge=0)  # word_grounded: distinct words per image (0: the top word per patch)
    fit_epochs: int = Field(8, ge=0)  # word_grounded: epochs of the fit without the LLM
    n_val_records: int = Field(32, ge=1)  # held-out records for the loss before/after
    reference_connector: Literal["mlp2x_gelu", "linear"] | None = None  # also trained, for comparison
    reference_records: int = Field(96, ge=1)  # its stage-1 caption records (LLM in the loop)
    curve_every: int = Field(0, ge=0)  # steps between image-reliance measurements (0: none)

    def _records_conflicts(self) -> list[str]:
        return _conflicting({"connector": self.connector == "word_grounded",
                             "records": self.records == "captions",
                             "reference_connector": self.reference_connector is not None}, self)


class FinetuneParams(TrainingParams):
    trainable: Literal["lora", "full"] = "lora"  # LoRA adapters, or the whole LLM
    caption_records: int | None = Field(0, ge=0)  # caption records mixed in (None: all; 0: none)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: str | list[str] = "all-linear"  # peft target_modules
    n_eval_images: int = Field(60, ge=1)  # test images scored (seeded subset)
    n_base_eval_images: int = Field(30, ge=1)  # of those, scored with the base LLM too
    eval_batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(112, ge=1)  # greedy decoding cap
    repetition_penalty: float = Field(1.0, ge=1.0)  # >1 discourages loops (decoding: saved for inference)
    no_repeat_ngram_size: int = Field(0, ge=0)  # n-grams that may not repeat (0: none; saved)
    grounded_decoding: bool = False  # name only objects the image tokens show (word connectors; saved)
    n_figure_images: int = Field(4, ge=1)  # test images in the reasoning figure
    reference_connector: Literal["mlp2x_gelu", "linear"] | None = None  # as pretrain's: also fine-tuned
    reference_steps: int | None = Field(None, ge=1)  # its fine-tuning steps (None: as many as the default's)
    curve_points: int = Field(0, ge=0)  # measurements along the run (0: none), on validation images
    n_curve_images: int = Field(8, ge=2)  # validation images of each measurement

    @model_validator(mode="after")
    def _conversation_has_turns(self):
        if self.conversation == "plain":
            raise ValueError("finetune.conversation: plain keeps only the image and the answer "
                             "(stage 1's template); fine-tuning needs the question: use auto, "
                             "tinyllava or chat")
        return self

    def _records_conflicts(self) -> list[str]:
        return _conflicting({"caption_records": self.caption_records != 0,
                             "reference_connector": self.reference_connector is not None}, self)


def _conflicting(conflicts: dict[str, bool], params) -> list[str]:
    """`key: value` of each conflicting setting."""
    return [f"{key}: {getattr(params, key)}" for key, conflict in conflicts.items() if conflict]


register_section("pretrain", PretrainParams)
register_section("finetune", FinetuneParams)
