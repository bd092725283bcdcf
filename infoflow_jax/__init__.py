"""infoflow-jax: check, numerically and at scale, what approximation theory says about Transformers.

The public API — everything a user needs to write a construction and check it
(``docs/own_construction.md`` walks through it):

Write a construction (weights from named residual slots, tracr-style):
    :class:`Program`, :class:`Form`, :class:`Head`, :func:`max_retrieval`, :class:`FFNBlock`;
    decoders :func:`piecewise_linear_decoder` (L3, 1-D) and :func:`kuhn_decoder` with
    :func:`kuhn_ffn` (L4, D-dimensional); :class:`Dense`; named functions :class:`LipschitzFn`;
    lemma bounds :func:`e_max`, :func:`beta_for_soft_max`, :func:`knots_for`,
    :func:`pl_decoder_error`; tasks (:class:`FunctionTask` for your own target, and the
    built-in ones); domains :class:`Cube`, :class:`Margin`; the claim :class:`Built`.

Check it:
    :func:`verify` (one configuration → :class:`Record`), :func:`verify_grid` (a grid of T, k, ε),
    :func:`certify` (a sound upper bound by branch-and-bound: ``record.certificate``, ``certified_upper``),
    :func:`fit_exponent` (the parameter exponent), :class:`Budget` with
    :data:`DEFAULT_BUDGET` / :data:`QUICK_BUDGET`; shared defects for mutants in
    :mod:`infoflow_jax.verification.mutants`.

Catalog:
    :func:`catalog` (every built-in construction and lemma check by name, installed entry
    points of group ``infoflow_jax.constructions``, and yours), :func:`register` (add yours;
    registering a name again replaces it), :func:`lookup` (a name, or a reference
    ``path/to/mine.py:SPEC`` / ``package.module:SPEC``), :class:`ConstructionSpec`.

Verification runs in float64: call :func:`use_float64` once before building (``verify``
refuses float32).
"""

from infoflow_jax.catalog import catalog, lookup, register, unregister
from infoflow_jax.core.decoders import piecewise_linear_decoder
from infoflow_jax.core.domains import Cube, Margin
from infoflow_jax.core.errors import InputError
from infoflow_jax.core.functions import LipschitzFn
from infoflow_jax.core.kuhn import kuhn_decoder, kuhn_ffn
from infoflow_jax.core.lemmas import beta_for_soft_max, e_max, knots_for, pl_decoder_error
from infoflow_jax.core.precision import use_float64
from infoflow_jax.core.rates import fit_exponent
from infoflow_jax.core.relu_net import Dense
from infoflow_jax.core.slots import FFNBlock, Form, Head, Program, max_retrieval
from infoflow_jax.core.tasks import FunctionTask, KthLargest, MaxRetrieval, Task, TwoHop
from infoflow_jax.verification.construction import Built, ConstructionSpec
from infoflow_jax.verification.estimators import DEFAULT_BUDGET, QUICK_BUDGET, Budget
from infoflow_jax.verification.records import RECORD_KEYS, Record
from infoflow_jax.verification.certify import certify
from infoflow_jax.verification.verify import verify, verify_grid

__all__ = [
    # write a construction
    "Program", "Form", "Head", "max_retrieval", "FFNBlock", "Dense",
    "piecewise_linear_decoder", "kuhn_decoder", "kuhn_ffn", "LipschitzFn",
    "e_max", "beta_for_soft_max", "knots_for", "pl_decoder_error",
    "Task", "FunctionTask", "MaxRetrieval", "TwoHop", "KthLargest", "Cube", "Margin", "Built",
    # check it
    "verify", "verify_grid", "certify", "fit_exponent", "Budget", "DEFAULT_BUDGET", "QUICK_BUDGET", "Record", "RECORD_KEYS",
    "use_float64", "InputError",
    # catalog
    "catalog", "lookup", "register", "unregister", "ConstructionSpec",
]
