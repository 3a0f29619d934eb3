"""``python -m proxycore.workers CHANNEL INDEX [SHARED]``: one worker process (started by the primary)."""

import sys

from proxycore.utils import eventloop, malloc
from proxycore.workers.child import run

if __name__ == "__main__":
    malloc.tune()
    sys.exit(eventloop.run(run(sys.argv[1], int(sys.argv[2]), *sys.argv[3:4])))
