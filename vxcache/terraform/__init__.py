"""
Read a Terraform state pulled from a deployment node, and hide its secrets.

The module does no I/O: it takes JSON text, bytes or an already parsed object.
Two state formats are understood:

- format 4 (Terraform 0.12 and later): a flat ``resources`` list whose
  instances each carry ``attributes`` and the ``sensitive_attributes`` paths
  into them;
- format 3 (Terraform 0.7 to 0.11): a ``modules`` list, each module holding
  a ``resources`` object keyed by address, with flat string attributes and
  its own ``outputs``.

Formats 1 and 2, and any format not yet known, raise ``StateFormatError``.
JSON is parsed with the standard library because it keeps integers beyond
int64, which format 3 states can hold, exact.
"""

from vxcache.terraform._model import REDACTED, TerraformResource, TerraformState
from vxcache.terraform._read import load_state, read_state
from vxcache.terraform._redact import redact_state

__all__ = [
    "REDACTED",
    "TerraformResource",
    "TerraformState",
    "load_state",
    "read_state",
    "redact_state",
]
