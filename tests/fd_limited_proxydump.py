"""``python -m tests.fd_limited_proxydump ARGS``: proxydump with RLIMIT_NOFILE lowered to
$PROXYCORE_TEST_NOFILE ("N" for soft and hard, or "SOFT:HARD"), for the file-descriptor
tests in test_e2e_limits."""

import os
import resource
import runpy

soft, _, hard = os.environ["PROXYCORE_TEST_NOFILE"].partition(":")
resource.setrlimit(resource.RLIMIT_NOFILE, (int(soft), int(hard or soft)))
runpy.run_module("proxycore", run_name="__main__", alter_sys=True)
