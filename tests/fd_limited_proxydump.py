"""``python -m tests.fd_limited_proxydump ARGS``: proxydump with RLIMIT_NOFILE lowered to
$PROXYCORE_TEST_NOFILE (soft and hard), for the file-descriptor tests in test_e2e_limits."""

import os
import resource
import runpy

limit = int(os.environ["PROXYCORE_TEST_NOFILE"])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
runpy.run_module("proxycore", run_name="__main__", alter_sys=True)
