"""Parameter sections `pretrain` and `finetune` (see profiles/default.yaml)."""
from tinyemo.config import Section, register_section


class PretrainParams(Section):
    epochs: int = 1


class FinetuneParams(Section):
    epochs: int = 1


register_section("pretrain", PretrainParams)
register_section("finetune", FinetuneParams)
