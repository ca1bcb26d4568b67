"""``python -m jaxloss demo``: the main job (see :mod:`jaxloss._demo`)."""

import sys

from jaxloss import _demo

if __name__ == "__main__":
    sys.exit(_demo.cli(sys.argv[1:]))
