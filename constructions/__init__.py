"""Hand-built weight constructions of THEORY §4, one module per construction.

Importing this package registers every construction in
:data:`infoflow_jax.construction.REGISTRY`.
"""

from constructions import c1_max_retriever  # noqa: F401
from constructions import c2_two_hop_retriever  # noqa: F401
from constructions import c3_kth_largest  # noqa: F401
from constructions import c6_top_r  # noqa: F401
from constructions import c4_second_largest  # noqa: F401
from constructions import c5_memorizer  # noqa: F401
from constructions import c7_d_retrieval  # noqa: F401
from constructions import c8_soft_topk  # noqa: F401
