"""``python -m vcheckd_client``: the same as the ``vcheckd-client`` script."""

import sys

from .cli import main

sys.exit(main())
