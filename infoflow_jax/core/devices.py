"""Devices: shard the configuration-batch axis over every device.

One :class:`jax.sharding.Mesh` with a single axis ``"batch"`` over all devices;
arrays whose leading axis is the batch of configurations get
``NamedSharding(mesh, P("batch"))``, shared inputs (the exhaustive grid) are
replicated. On one device nothing is placed explicitly (plain arrays).

The engine pads each call's batch to a multiple of the device count (repeating
the first configuration; the padded rows are computed and dropped), so every
device gets the same number of configurations. Each configuration's numbers do
not depend on which device computes it (``tests/test_sweep_devices.py``).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "batch"


class Placement:
    """Where a call's arrays go: one device (no-op) or sharded over a 1-D mesh."""

    def __init__(self, devices=None):
        self.devices = list(devices if devices is not None else jax.devices())
        self.mesh = Mesh(np.array(self.devices), (AXIS,)) if len(self.devices) > 1 else None

    @property
    def count(self) -> int:
        return len(self.devices)

    def batch(self, tree):
        """Put a pytree whose leaves have the config batch as leading axis."""
        if self.mesh is None:
            return jax.tree_util.tree_map(lambda x: jax.device_put(x, self.devices[0]), tree)
        sharding = NamedSharding(self.mesh, P(AXIS))
        return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding), tree)

    def replicated(self, tree):
        """Put a pytree every device needs whole."""
        if self.mesh is None:
            return jax.tree_util.tree_map(lambda x: jax.device_put(x, self.devices[0]), tree)
        sharding = NamedSharding(self.mesh, P())
        return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding), tree)

    def round_up(self, n: int) -> int:
        """n rounded up to a multiple of the device count."""
        return -(-n // self.count) * self.count


def device_info() -> dict:
    """Device kinds and count, for the manifest."""
    devs = jax.devices()
    kinds = sorted({d.device_kind for d in devs})
    return {"platform": devs[0].platform, "device_kinds": kinds, "device_count": len(devs),
            "process_count": jax.process_count()}
