"""Parameter section `bias` (see profiles/default.yaml)."""
from tinyemo.config import Section, register_section


class BiasParams(Section):
    alpha: float = 0.05


register_section("bias", BiasParams)
