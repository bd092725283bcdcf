"""Parameter-count conventions (THEORY §1), in one place.

For every model three numbers are reported:

* ``total``   — every dense entry of every weight array (what memory holds).
* ``nonzero`` — entries that are not exactly zero.
* ``theorem`` — the convention under which "O(1/ε) parameters" is stated: the
  *nonzero* entries of the embedding, the FFNs and the readout, excluding the
  fixed-size attention matrices. Nonzero, because approximation theory counts
  a network's weights as its connections (a hand-built FFN laid into a wider
  residual stream has structural zeros that no theorem pays for).

Magnitudes never count: β = 10^6 is one parameter, as is β = 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jax
import numpy as np
from infoflow_jax.core.flax_nnx import nnx


@dataclass(frozen=True)
class ParamCount:
    total: int
    nonzero: int
    theorem: int

    def as_record(self) -> dict:
        return {f"params_{k}": v for k, v in asdict(self).items()}


def _is_attention(path) -> bool:
    return "attn" in (str(p) for p in path)


def count_params(state) -> ParamCount:
    """Count a model's parameters under the three conventions.

    ``state`` is an ``nnx.State`` (from ``nnx.split``) or a module.
    """
    if isinstance(state, nnx.Module):
        state = nnx.state(state, nnx.Param)
    total = nonzero = theorem = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        keys = [getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path]
        arr = np.asarray(leaf)
        nz = int(np.count_nonzero(arr))
        total += int(arr.size)
        nonzero += nz
        if not _is_attention(keys):
            theorem += nz
    return ParamCount(total=total, nonzero=nonzero, theorem=theorem)
