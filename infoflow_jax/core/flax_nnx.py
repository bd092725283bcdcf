"""``flax.nnx``, imported without importing IPython.

At import, ``flax.nnx`` asks IPython whether a notebook is running (to colour its reprs). Outside a
notebook IPython has not been imported, and the answer is "no"; but asking imports all of IPython
when it is installed: 1.8 s of a 12 s ``import infoflow_jax`` measured under load, paid by every
process of a run (the parent and each worker). So while flax is first imported here the question
fails fast (``from IPython import …`` raises ImportError, which flax reads as "no notebook") — the
same answer without the import — and IPython is importable again afterwards. Inside a notebook
IPython is already imported and nothing changes. The package imports ``nnx`` from here.
"""

import sys

if "IPython" not in sys.modules and "flax.nnx" not in sys.modules:
    sys.modules["IPython"] = None  # type: ignore[assignment]
    try:
        from flax import nnx
    finally:
        del sys.modules["IPython"]
else:
    from flax import nnx

__all__ = ["nnx"]
