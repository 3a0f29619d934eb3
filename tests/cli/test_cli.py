"""proxydump as a user meets it: a real process, its exit status, stdout and stderr."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.e2e_servers import free_port
from tests.processes import assert_clean_failure, proxydump, start_proxydump, wait_listening

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

TIMEOUT = 30


def test_version():
    r = proxydump("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("proxycore: ")
    assert "Python:" in r.stdout and r.stderr == ""


def test_help():
    r = proxydump("--help")
    assert r.returncode == 0
    for flag in ("--listen-port", "--listen-host", "--scripts", "--set", "--quiet", "--verbose",
                 "--flow-detail", "--options", "--no-server", "--mode", "--ssl-insecure", "--showhost"):
        assert flag in r.stdout


def test_options_lists_every_option_with_help():
    r = proxydump("--options")
    assert r.returncode == 0, r.stderr
    assert "listen_port" in r.stdout
    assert "flow_detail" in r.stdout and "termlog_verbosity" in r.stdout
    assert "display detail level" in r.stdout  # the dumper's help text came along
    assert r.stderr == ""


def test_bad_flag_is_a_usage_error():
    r = proxydump("--no-such-flag")
    assert r.returncode == 2
    assert_clean_failure(r, "proxydump: error:", "--no-such-flag")


def test_bad_flag_value():
    r = proxydump("--listen-port", "eighty")
    assert r.returncode == 2
    assert_clean_failure(r, "proxydump: error:", "eighty")


def test_bad_filter_expression():
    r = proxydump("-n", "~m", "POST", "&")
    assert r.returncode == 1
    assert_clean_failure(r, "Invalid filter expression")


def test_unknown_option():
    assert_clean_failure(proxydump("--set", "nonsense=1"), "nonsense")


def test_bad_option_value():
    assert_clean_failure(proxydump("--set", "listen_port=abc"), "listen_port")


def test_missing_script(tmp_path):
    missing = tmp_path / "missing.py"
    assert_clean_failure(proxydump("-s", str(missing)), "missing.py")


def test_script_with_syntax_error(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("def request(flow)\n    pass\n")
    r = proxydump("-s", str(script), "--listen-host", "127.0.0.1", "-p", str(free_port()))
    assert_clean_failure(r, "broken.py")
    assert r.returncode == 1


def test_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = proxydump("--listen-host", "127.0.0.1", "-p", str(port))
    assert_clean_failure(r, str(port))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(sig):
    port = free_port()
    proc = start_proxydump("--listen-host", "127.0.0.1", "-p", str(port))
    try:
        wait_listening(proc, port)
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err, err


def test_sigterm_during_startup_is_quiet():
    proc = start_proxydump("--listen-host", "127.0.0.1", "-p", str(free_port()))
    time.sleep(0.05)  # most likely still importing
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert b"Traceback" not in err, err


def test_no_server_starts_and_stops():
    proc = start_proxydump("-n")
    try:
        time.sleep(1.0)
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err


def test_main_returns_exit_code_in_process(capsys):
    from proxycore.tools.dump import main

    assert main(["--version"]) == 0
    assert main(["--bogus"]) == 2
    assert "proxydump: error:" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists("/proc/self"), reason="needs Linux")
def test_version_does_not_import_the_engine():
    code = (
        "import sys; from proxycore.tools.dump import main; main(['--version']);"
        "print(sorted(m for m in sys.modules if m in ('asyncio', 'logging', 'proxycore.options', 'proxycore.master', 'ssl')))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert r.stdout.strip().endswith("[]"), r.stdout


@pytest.mark.parametrize("value", ["-5", "99999", "65536"])
def test_port_out_of_range_is_refused_not_replaced(value):
    """Never a resolver error, never a random port instead of the one asked for."""
    r = proxydump("-p", value)
    assert r.returncode == 2
    assert_clean_failure(r, "proxydump: error:", f"invalid port '{value}': must be 0-65535")
    r = proxydump("--set", f"listen_port={value}")
    assert_clean_failure(r, f"proxydump: error: Invalid value {int(value)} for listen_port: must be from 0 to 65535")
    assert "listening" not in r.stderr + r.stdout


def test_web_port_out_of_range_is_refused():
    r = subprocess.run([sys.executable, "-m", "proxycore.tools.web", "--web-port", "70000"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 2
    assert_clean_failure(r, "proxyweb: error:", "invalid port '70000'")


def test_rfile_directory_is_one_clear_error(tmp_path):
    r = proxydump("-n", "-r", str(tmp_path))
    assert_clean_failure(r, f"Cannot read flow file {tmp_path}: it is a directory")
    assert "no such file" not in r.stderr
