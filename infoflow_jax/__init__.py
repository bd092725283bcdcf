"""infoflow-jax: check, numerically and at scale, what approximation theory says about Transformers.

The public API — everything a user needs to write a construction and check it
(``docs/own_construction.md`` walks through it):

Write a construction (weights from named residual slots, tracr-style):
    :class:`Program`, :class:`Form`, :class:`Head`, :func:`max_retrieval`, :class:`FFNBlock`;
    decoders :func:`piecewise_linear_decoder` (L3, 1-D) and :func:`kuhn_decoder` with
    :func:`kuhn_ffn` (L4, D-dimensional); :class:`Dense`; named functions :class:`LipschitzFn`;
    lemma bounds :func:`e_max`, :func:`beta_for_soft_max` (L1), :func:`margin_retrieval_error`,
    :func:`beta_for_margin` (L2), :func:`flagged_set_leakage`, :func:`score_gap_for_flagged_set`
    (L2 on a flagged set), :func:`pl_decoder_error`, :func:`knots_for` (L3), :func:`kuhn_cells_for`
    (L4); tasks (:class:`FunctionTask` for your own target, and the
    built-in ones); domains :class:`Cube`, :class:`Margin`; the claim :class:`Built`.

State each proof step's local claim on its block (``claim=``), checked from the weights:
    :class:`OneInput`, :class:`SumOfOneInputs`, :class:`OnBox`, :class:`Retrieval`, and the
    targets :func:`step_function` (an exact flag) and :func:`clipped` (a decoder read off [0,1]).

Break it on purpose (mutants keep the claim and must fail): :data:`BETA_SMALL`,
    :data:`SIGN_FLIPPED`, :func:`knot_dropped`, :func:`vertex_shifted`; localized defects
    :func:`one_cell_bump`, :func:`end_ramp`, :func:`random_vertex_shifted` of height
    :data:`LOCALIZED_STRENGTH` × the bound.

Check it:
    :func:`verify` (one configuration → :class:`Record`), :func:`verify_grid` (a grid of T, k, ε),
    :func:`check_steps` (the proof's steps against the compiled weights, no forward pass),
    :func:`certify` (a sound upper bound by branch-and-bound: ``record.certificate``, ``certified_upper``),
    :func:`fit_exponent` (the parameter exponent), :class:`Budget` with
    :data:`DEFAULT_BUDGET` / :data:`QUICK_BUDGET`.

Catalog:
    :func:`catalog` (every built-in construction and lemma check by name, installed entry
    points of group ``infoflow_jax.constructions``, and yours), :func:`register` (add yours;
    registering a name again replaces it), :func:`lookup` (a name, or a reference
    ``path/to/mine.py:SPEC`` / ``package.module:SPEC``), :class:`ConstructionSpec`.

Verification runs in float64: call :func:`use_float64` once before building (``verify``
refuses float32).
"""

# ``catalog`` is also the name of a submodule: importing the submodule (as anything may) rebinds the
# package attribute to it, so the function is bound here, after that import, as it always was
from infoflow_jax.catalog import catalog, lookup, register, unregister  # noqa: E402

_WHERE = {  # every other public name → the module that defines it (imported on first use: PEP 562)
    **dict.fromkeys(('OnBox', 'OneInput', 'Retrieval', 'SumOfOneInputs', 'clipped', 'step_function'), "infoflow_jax.core.claims"),
    **dict.fromkeys(('piecewise_linear_decoder',), "infoflow_jax.core.decoders"),
    **dict.fromkeys(('Cube', 'Margin'), "infoflow_jax.core.domains"),
    **dict.fromkeys(('InputError',), "infoflow_jax.core.errors"),
    **dict.fromkeys(('LipschitzFn',), "infoflow_jax.core.functions"),
    **dict.fromkeys(('kuhn_cells_for', 'kuhn_decoder', 'kuhn_ffn'), "infoflow_jax.core.kuhn"),
    **dict.fromkeys(('beta_for_margin', 'beta_for_soft_max', 'e_max', 'flagged_set_leakage', 'knots_for', 'margin_retrieval_error', 'pl_decoder_error', 'score_gap_for_flagged_set'), "infoflow_jax.core.lemmas"),
    **dict.fromkeys(('use_float64',), "infoflow_jax.core.precision"),
    **dict.fromkeys(('fit_exponent',), "infoflow_jax.core.rates"),
    **dict.fromkeys(('Dense',), "infoflow_jax.core.relu_net"),
    **dict.fromkeys(('FFNBlock', 'Form', 'Head', 'Program', 'max_retrieval'), "infoflow_jax.core.slots"),
    **dict.fromkeys(('FunctionTask', 'KthLargest', 'MaxRetrieval', 'Task', 'TwoHop'), "infoflow_jax.core.tasks"),
    **dict.fromkeys(('Built', 'ConstructionSpec'), "infoflow_jax.verification.construction"),
    **dict.fromkeys(('DEFAULT_BUDGET', 'QUICK_BUDGET', 'Budget'), "infoflow_jax.verification.estimators"),
    **dict.fromkeys(('BETA_SMALL', 'LOCALIZED_STRENGTH', 'SIGN_FLIPPED', 'end_ramp', 'knot_dropped', 'one_cell_bump', 'random_vertex_shifted', 'vertex_shifted'), "infoflow_jax.verification.mutants"),
    **dict.fromkeys(('RECORD_KEYS', 'Record'), "infoflow_jax.verification.records"),
    **dict.fromkeys(('certify',), "infoflow_jax.verification.certify"),
    **dict.fromkeys(('check_steps',), "infoflow_jax.verification.steps"),
    **dict.fromkeys(('verify', 'verify_grid'), "infoflow_jax.verification.verify"),
}


def __getattr__(name: str):
    """Import a public name's module on first use, so that ``import infoflow_jax`` stays cheap."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'infoflow_jax' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    # write a construction
    "Program", "Form", "Head", "max_retrieval", "FFNBlock", "Dense",
    "piecewise_linear_decoder", "kuhn_decoder", "kuhn_ffn", "kuhn_cells_for", "LipschitzFn",
    "e_max", "beta_for_soft_max", "knots_for", "pl_decoder_error", "margin_retrieval_error", "beta_for_margin",
    "flagged_set_leakage", "score_gap_for_flagged_set",
    "Task", "FunctionTask", "MaxRetrieval", "TwoHop", "KthLargest", "Cube", "Margin", "Built",
    # its proof steps' claims
    "OneInput", "SumOfOneInputs", "OnBox", "Retrieval", "step_function", "clipped",
    # break it on purpose
    "BETA_SMALL", "SIGN_FLIPPED", "knot_dropped", "vertex_shifted", "one_cell_bump", "end_ramp",
    "random_vertex_shifted", "LOCALIZED_STRENGTH",
    # check it
    "verify", "verify_grid", "check_steps", "certify", "fit_exponent", "Budget", "DEFAULT_BUDGET", "QUICK_BUDGET", "Record", "RECORD_KEYS",
    "use_float64", "InputError",
    # catalog
    "catalog", "lookup", "register", "unregister", "ConstructionSpec",
]
