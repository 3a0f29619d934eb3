"""``python -m proxycore`` runs proxydump."""

import sys

from proxycore.tools.dump import main

if __name__ == "__main__":
    sys.exit(main())
