"""python -m infoflow_jax.cli"""

import sys

from infoflow_jax.cli.app import main

sys.exit(main())
