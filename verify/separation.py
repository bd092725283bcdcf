"""The separation sweep as a script: equivalent to ``infoflow separation``.

    python verify/separation.py                    # == infoflow separation
    python verify/separation.py --quick --out DIR  # any `infoflow separation` options

Exit status as for ``infoflow separation``: 0 iff every measured row passes and
every fitted slope is within tolerance of its predicted exponent.
"""

import sys

from infoflow_jax.cli.app import main

if __name__ == "__main__":
    sys.exit(main(["separation", *sys.argv[1:]]))
