"""Memory planning for the estimators: bytes per evaluated input, the memory budget, chunk sizes.

Chunks are sized from bytes, not counts: an input X of shape (T, d) evaluated through a
model costs about

    bytes_per_input = 2 · 8 · [(T + 1) · (E + W_max + d) + max_l h_l · q_l · T]       (float64)

— the residual stream (E), the widest FFN layer of one block (W_max, hidden units at every
position) and the largest layer's attention matrices, h_l heads × q_l query rows × T keys
(q_l = T + 1 on the dense path; on the fast path 2 for a layer with shared token queries and
1 for the last layer, :func:`infoflow_jax.core.fast_model.fast_query_rows`), each held twice (:data:`COPIES`: pre-activation
and relu, scores and softmax; XLA's own memory analysis of C2's compiled forward measured
1.8–2.0 copies at T = 64 and 1024, dense and fast path) — and an ascent step, which keeps
forward and backward values, at most :data:`ASCENT_FACTOR` times that (measured: 1.5–2.5). The budget is a safe fraction
(:data:`SAFE_FRACTION`) of the device's free memory (accelerators) or of the host's
available RAM (CPU), or what ``--memory`` says. A configuration whose fixed inputs (one
batch per sampler) or whose single evaluation cannot fit is refused up front with one
line naming T, ε and the bytes it would need (:func:`check_fits`).
"""

from __future__ import annotations

import os

from infoflow_jax.core.errors import InputError

SAFE_FRACTION = 0.5
ASCENT_FACTOR = 4  # forward + backward + optimiser state per ascent start, in units of one forward
COPIES = 2  # every activation is held about twice in a compiled forward (measured, see above)
ITEM = 8  # float64


def available_bytes() -> int:
    """Free memory of the default device (accelerator) or the host's available RAM (CPU)."""
    import jax

    dev = jax.devices()[0]
    if dev.platform != "cpu":
        stats = dev.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover (non-Linux)
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def memory_budget(memory: int | None = None) -> int:
    """The bytes the estimators may use: ``memory`` if given, else SAFE_FRACTION of what is free."""
    return int(memory) if memory is not None else int(SAFE_FRACTION * available_bytes())


def bytes_per_input(cfg, T: int, d: int = 1, ffn_widths: list[int] | None = None,
                    query_rows: list[int] | None = None) -> int:
    """Activation bytes of one forward evaluation of a model of config ``cfg`` on X (T, d).
    ``ffn_widths`` (activations per position of each layer's FFN) replaces the config's
    widths when the FFNs run on the fast path (:func:`infoflow_jax.core.fast_model.fast_ffn_widths`);
    ``query_rows`` (per layer; default T + 1 each) the attention's query rows there
    (:func:`infoflow_jax.core.fast_model.fast_query_rows`)."""
    if cfg is None:  # a lemma check: a softmax over T scores
        return ITEM * 4 * (T + 1) * d
    widths = [s.n_out for layer in cfg.layers for s in layer.ffn] if ffn_widths is None else list(ffn_widths)
    rows = [T + 1] * cfg.L if query_rows is None else list(query_rows)
    scores = max((layer.heads * q * T for layer, q in zip(cfg.layers, rows)), default=0)
    return COPIES * ITEM * ((T + 1) * (cfg.E + max(widths, default=0) + d) + scores)


def fixed_input_bytes(T: int, d: int, samples: int, n_samplers: int) -> int:
    """Bytes of the key-dependent inputs held at once: one batch of ``samples`` per sampler."""
    return ITEM * T * d * samples * n_samplers


def check_fits(*, T: int, eps: float | None, per_input: int, fixed: int, budget: int) -> None:
    """Refuse (InputError naming T and ε) a configuration that cannot be evaluated within ``budget``."""
    need = max(per_input * ASCENT_FACTOR, fixed + per_input)
    if need > budget:
        at = f"T = {T}" + (f", eps = {eps:g}" if eps is not None else "")
        raise InputError("T", T, f"small enough to fit in memory: at {at} one evaluation needs "
                         f"{_fmt(need)} and {_fmt(budget)} may be used (--memory to change)")


def chunk_for(per_input: int, budget: int, fixed: int, cap: int, factor: int = 1) -> int:
    """Inputs per vectorised step: as many as fit in what ``fixed`` leaves of ``budget``, at most ``cap``."""
    return int(max(1, min(cap, (budget - fixed) // max(1, factor * per_input))))


def human_bytes(n: int) -> str:
    """n bytes in TB, GB or MB (one decimal)."""
    return _fmt(n)


def _fmt(n: int) -> str:
    for unit, size in (("TB", 2 ** 40), ("GB", 2 ** 30), ("MB", 2 ** 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
