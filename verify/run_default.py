"""The default verification suite as a script: equivalent to ``infoflow verify``.

    python verify/run_default.py            # == infoflow verify
    python verify/run_default.py C1 --json  # any `infoflow verify` options

Exit status as for ``infoflow verify``: 0 iff every row is as expected.
"""

import sys

from infoflow_jax.cli.app import main

if __name__ == "__main__":
    sys.exit(main(["verify", *sys.argv[1:]]))
