"""Sweeps: many configurations, bucketed by padded shape, one compiled program per bucket.

* :mod:`~infoflow_jax.sweep.spec` — :class:`SweepSpec` (TOML or Python) → :class:`Config` list
* :mod:`~infoflow_jax.sweep.buckets` — zero-unit width padding (:func:`pad_state`)
* :mod:`~infoflow_jax.sweep.engine` — :func:`run_sweep`
* :mod:`~infoflow_jax.verification.store` — ``results.jsonl`` (append, fsync, resume) and ``manifest.json``
* :mod:`~infoflow_jax.core.devices` — sharding of the configuration batch over devices
* :mod:`~infoflow_jax.sweep.rates` — parameter and error exponents with confidence intervals
* :mod:`~infoflow_jax.sweep.report` — ``report.md`` and figures

See ``docs/sweeps.md``.
"""

from infoflow_jax.sweep.spec import Config, Run, SweepSpec, expand, load_spec, parse_spec  # noqa: F401
