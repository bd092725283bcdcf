"""Hand-built weight constructions of THEORY §4, one module per construction.

:data:`CATALOG` is the explicit list of the built-in constructions, in the order
``infoflow verify`` runs them. Importing a module registers nothing anywhere:
:mod:`infoflow_jax.catalog` reads this list (and the lemma checks, and whatever a
user registers).
"""

from constructions import (c1_max_retriever, c2_two_hop_retriever, c3_kth_largest, c4_second_largest,
                           c5_memorizer, c6_top_r, c7_d_retrieval, c8_soft_topk)

CATALOG = (
    c1_max_retriever.SPEC,
    c2_two_hop_retriever.SPEC,
    c3_kth_largest.SPEC,
    c6_top_r.SPEC_DECOUPLED,
    c6_top_r.SPEC_COUPLED,
    c4_second_largest.SPEC,
    c5_memorizer.SPEC,
    c7_d_retrieval.SPEC,
    c8_soft_topk.SPEC,
)
