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

from infoflow_jax.catalog import catalog, lookup, register, unregister
from infoflow_jax.core.claims import OnBox, OneInput, Retrieval, SumOfOneInputs, clipped, step_function
from infoflow_jax.core.decoders import piecewise_linear_decoder
from infoflow_jax.core.domains import Cube, Margin
from infoflow_jax.core.errors import InputError
from infoflow_jax.core.functions import LipschitzFn
from infoflow_jax.core.kuhn import kuhn_cells_for, kuhn_decoder, kuhn_ffn
from infoflow_jax.core.lemmas import beta_for_margin, beta_for_soft_max, e_max, flagged_set_leakage, knots_for, \
    margin_retrieval_error, pl_decoder_error, score_gap_for_flagged_set
from infoflow_jax.core.precision import use_float64
from infoflow_jax.core.rates import fit_exponent
from infoflow_jax.core.relu_net import Dense
from infoflow_jax.core.slots import FFNBlock, Form, Head, Program, max_retrieval
from infoflow_jax.core.tasks import FunctionTask, KthLargest, MaxRetrieval, Task, TwoHop
from infoflow_jax.verification.construction import Built, ConstructionSpec
from infoflow_jax.verification.estimators import DEFAULT_BUDGET, QUICK_BUDGET, Budget
from infoflow_jax.verification.mutants import BETA_SMALL, LOCALIZED_STRENGTH, SIGN_FLIPPED, end_ramp, knot_dropped, \
    one_cell_bump, random_vertex_shifted, vertex_shifted
from infoflow_jax.verification.records import RECORD_KEYS, Record
from infoflow_jax.verification.certify import certify
from infoflow_jax.verification.steps import check_steps
from infoflow_jax.verification.verify import verify, verify_grid

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
