"""Parameter sections `projector` and `ablate` (see profiles/default.yaml)."""
from tinyemo.config import Section, register_section


class ProjectorParams(Section):
    epochs: int = 5


class AblateParams(Section):
    seeds: list[int] = [0]


register_section("projector", ProjectorParams)
register_section("ablate", AblateParams)
