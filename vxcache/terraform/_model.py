"""What a Terraform state reads into, and the marker that hides a secret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

REDACTED: Final[str] = "(sensitive value)"

MODES: Final = ("managed", "data")
MISSING: Final = object()
SCALARS: Final = frozenset({str, int, float, bool, type(None)})

# One step into an attribute value: a key of an object or a position in a list.
Key = str | int
Path = tuple[Key, ...]


@dataclass(frozen=True, slots=True)
class TerraformResource:
    """
    One resource of a state, with all its instances counted together.

    ``address`` has no instance key (``module.net.aws_subnet.private``,
    ``data.aws_ami.ubuntu``). ``module`` is the module instance address as the
    state writes it (``module.a.module.b``, ``module.a["x"]``) and ``None`` for
    the root module. ``instance_count`` counts current objects only: deposed
    objects left by create-before-destroy are not instances of their own.
    """

    address: str
    mode: str
    type: str
    name: str
    provider: str | None
    module: str | None
    instance_count: int


@dataclass(frozen=True, slots=True)
class TerraformState:
    """
    What vxcache reads from a state: its metadata, resources and root outputs.

    Output names are sorted and cover the root module only, as format 4 keeps
    no other outputs. Empty strings for ``terraform_version`` and ``lineage``
    read as ``None``.
    """

    format_version: int
    terraform_version: str | None
    serial: int | None
    lineage: str | None
    resources: tuple[TerraformResource, ...]
    output_names: tuple[str, ...]
    sensitive_output_names: tuple[str, ...]

    @property
    def resource_count(self) -> int:
        """Return how many resources the state holds, data sources included."""
        return len(self.resources)
