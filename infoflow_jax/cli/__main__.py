"""python -m infoflow_jax.cli"""

import sys

from infoflow_jax.cli.main import main

sys.exit(main())
