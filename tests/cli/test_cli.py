"""proxydump as a user meets it: a real process, its exit status, stdout and stderr."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e_servers import free_port

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

TIMEOUT = 30


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxycore", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
    )


def assert_clean_failure(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Non-zero exit, no traceback, and the error named on one stderr line."""
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if all(n in line for n in needles)]
    assert len(lines) == 1, r.stderr


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited early with {proc.returncode}: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("proxy did not start listening")


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "proxycore", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("proxycore: ")
    assert "Python:" in r.stdout and r.stderr == ""


def test_help():
    r = run("--help")
    assert r.returncode == 0
    for flag in ("--listen-port", "--listen-host", "--scripts", "--set", "--quiet", "--verbose",
                 "--flow-detail", "--options", "--no-server", "--mode", "--ssl-insecure", "--showhost"):
        assert flag in r.stdout


def test_options_lists_every_option_with_help():
    r = run("--options")
    assert r.returncode == 0, r.stderr
    assert "listen_port" in r.stdout
    assert "flow_detail" in r.stdout and "termlog_verbosity" in r.stdout
    assert "display detail level" in r.stdout  # the dumper's help text came along
    assert r.stderr == ""


def test_bad_flag_is_a_usage_error():
    r = run("--no-such-flag")
    assert r.returncode == 2
    assert_clean_failure(r, "proxydump: error:", "--no-such-flag")


def test_bad_flag_value():
    r = run("--listen-port", "eighty")
    assert r.returncode == 2
    assert_clean_failure(r, "proxydump: error:", "eighty")


def test_bad_filter_expression():
    r = run("-n", "~m", "POST", "&")
    assert r.returncode == 1
    assert_clean_failure(r, "Invalid filter expression")


def test_unknown_option():
    assert_clean_failure(run("--set", "nonsense=1"), "nonsense")


def test_bad_option_value():
    assert_clean_failure(run("--set", "listen_port=abc"), "listen_port")


def test_missing_script(tmp_path):
    missing = tmp_path / "missing.py"
    assert_clean_failure(run("-s", str(missing)), "missing.py")


def test_script_with_syntax_error(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("def request(flow)\n    pass\n")
    r = run("-s", str(script), "--listen-host", "127.0.0.1", "-p", str(free_port()))
    assert_clean_failure(r, "broken.py")
    assert r.returncode == 1


def test_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run("--listen-host", "127.0.0.1", "-p", str(port))
    assert_clean_failure(r, str(port))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(sig):
    port = free_port()
    proc = start("--listen-host", "127.0.0.1", "-p", str(port))
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
    proc = start("--listen-host", "127.0.0.1", "-p", str(free_port()))
    time.sleep(0.05)  # most likely still importing
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert b"Traceback" not in err, err


def test_no_server_starts_and_stops():
    proc = start("-n")
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
    r = run("-p", value)
    assert r.returncode == 2
    assert_clean_failure(r, "proxydump: error:", f"invalid port '{value}': must be 0-65535")
    r = run("--set", f"listen_port={value}")
    assert_clean_failure(r, f"proxydump: error: Invalid value {int(value)} for listen_port: must be from 0 to 65535")
    assert "listening" not in r.stderr + r.stdout


def test_web_port_out_of_range_is_refused():
    r = subprocess.run([sys.executable, "-m", "proxycore.tools.web", "--web-port", "70000"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 2
    assert_clean_failure(r, "proxyweb: error:", "invalid port '70000'")


def test_rfile_directory_is_one_clear_error(tmp_path):
    r = run("-n", "-r", str(tmp_path))
    assert_clean_failure(r, f"Cannot read flow file {tmp_path}: it is a directory")
    assert "no such file" not in r.stderr
