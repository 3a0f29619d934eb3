"""htpasswd files: every hash kind the real ``htpasswd`` writes, checked against known hashes and,
when apache2-utils is installed, against files the tool writes during the test."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.utils.htpasswd import HtpasswdError, HtpasswdFile, check_hash, md5_crypt, sha_crypt
from tests.hypothesis_budget import budget

PASSWORD = "pässw0rd:x"  # non-ASCII and a colon: both are legal in passwords
# Written by htpasswd 2.4 (apache2-utils) for PASSWORD with the flag named first.
KNOWN = {
    "-m": "$apr1$vLe7m2UA$05c59xPP957T.mKu5bVM3.",
    "-B": "$2y$05$6oBvBXed0NjK3lSOoXT.zuFs1HevKwbOh20SYWkXcwfdVUy7h/gda",
    "-B -C 4": "$2y$04$8F/mVUAC5mqjkkrdYkgmSOjZBI.01EbNWaCBpzOv7dV22Goz1RUUi",
    "-s": "{SHA}dTf2UWvUyFgWtwC7khycIbE64p0=",
    "-2": "$5$suN13RjH9oO76vbc$uLAzTP.1B9eiP/9v8JOA5v4LVVm6xtPfazXKpL8oRq5",
    "-5": "$6$BlFQ0EmrveAJtO7V$yiQethkCMjaNFbnqJ7L5MZeB1.a0Cv3ckfiBLY0PxbjbnjFBXVlyzKDBMdJBtmaYgblP.//OYeXECwBsMKo9Q1",
    "-2 -r 1234": "$5$rounds=1234$oui9E6mxR0mmX974$k1pzc5WSvtJTClTil8eMYRT7gLrtuN6cmzRBt0wWDV1",
}
has_htpasswd = pytest.mark.skipif(
    shutil.which("htpasswd") is None, reason="htpasswd is not installed (.ci/run installs apache2-utils)"
)


@pytest.mark.parametrize("flags", KNOWN)
def test_known_hashes(flags):
    assert check_hash(PASSWORD, KNOWN[flags])
    assert not check_hash("pässw0rd", KNOWN[flags])
    assert not check_hash(PASSWORD + " ", KNOWN[flags])
    assert not check_hash("", KNOWN[flags])


def test_md5_crypt_reproduces_the_hash():
    assert md5_crypt(PASSWORD.encode(), b"vLe7m2UA") == KNOWN["-m"]
    # The same algorithm under crypt's "$1$" magic; the salt is cut to 8 characters.
    assert md5_crypt(b"password", b"saltstring", b"$1$") == "$1$saltstri$qQY4WxjABChYG1ccLpfkz/"


def test_sha_crypt_vectors():
    # Strings from the SHA-crypt specification's examples, hashed by glibc's crypt().
    assert sha_crypt(b"Hello world!", "$5$saltstring") == (
        "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
    )
    assert sha_crypt(b"Hello world!", "$6$saltstring") == (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJu"
        "esI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
    )
    assert sha_crypt(b"Hello world!", "$5$rounds=10000$saltstringsaltstring") == (
        "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"
    )
    assert sha_crypt(b"we have a short salt string but not a short password", "$6$rounds=77777$short") == (
        "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0g"
        "ge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"
    )


def _system_crypt():
    """The C library's crypt() where Python still has the module (until 3.13), else None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
    return crypt.crypt


salts = st.text(alphabet="./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1, max_size=16)


@pytest.mark.skipif(_system_crypt() is None, reason="no crypt module in this Python")
@budget(30)
@given(st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=30), salts, st.sampled_from(["$1$", "$5$", "$6$"]))
def test_agrees_with_the_c_library(password, salt, magic):
    expected = _system_crypt()(password, magic + salt)
    if magic == "$1$":
        assert md5_crypt(password.encode(), salt.encode(), b"$1$") == expected
    else:
        assert sha_crypt(password.encode(), magic + salt) == expected


def test_file_with_every_kind_and_comments():
    lines = ["# users", ""] + [f"u{i}:{h}" for i, h in enumerate(KNOWN.values())]
    htpasswd = HtpasswdFile("\n".join(lines) + "\n")
    for i in range(len(KNOWN)):
        assert htpasswd.check_password(f"u{i}", PASSWORD)
        assert not htpasswd.check_password(f"u{i}", "nope")
    assert not htpasswd.check_password("nobody", PASSWORD)


@pytest.mark.parametrize(
    "content, message",
    [
        ("justaname\n", "line 1: expected user:hash"),
        (":{SHA}x\n", "line 1: expected user:hash"),
        ("# c\nbob:secret\n", "line 2: unsupported hash for user 'bob'"),  # htpasswd -p
        ("bob:sW.U3o8uAk7oE\n", "unsupported hash"),  # htpasswd -d (DES crypt)
        ("bob:*0\n", "unsupported hash"),  # what crypt() writes on failure
    ],
)
def test_malformed_files(content, message):
    with pytest.raises(HtpasswdError, match=message):
        HtpasswdFile(content)


def test_not_utf8_file(tmp_path):
    path = tmp_path / "h"
    path.write_bytes(b"b\xffb:{SHA}x\n")
    with pytest.raises(HtpasswdError, match="not UTF-8"):
        HtpasswdFile.from_file(path)


def test_damaged_hashes_match_nothing():
    for damaged in ("$2y$05$short", "$apr1$", "$5$rounds=x$salt$h", "$6$", "{SHA}"):
        assert not check_hash("", damaged)
        assert not check_hash("x", damaged)


def test_bcrypt_looks_at_72_bytes_like_apache():
    long = "a" * 80
    pwhash = "$2y$05$sppw3a3zJjXsNifNpkKb9e76SRbmUfS18pnkrUG1oC3c.q1pqdgkq"  # htpasswd -B, 80 a's
    assert check_hash(long, pwhash)
    assert check_hash("a" * 72, pwhash)
    assert not check_hash("a" * 71, pwhash)


@given(st.text(max_size=40))
def test_md5_and_sha1_reject_other_passwords(password):
    if password != PASSWORD:
        for flags in ("-m", "-s"):
            assert not check_hash(password, KNOWN[flags])


@pytest.mark.e2e
@has_htpasswd
@pytest.mark.parametrize("flags", ["-m", "-B", "-s", "-2", "-5", "-5 -r 2000"])
def test_files_written_by_htpasswd(tmp_path, flags):
    path = tmp_path / "htpasswd"
    users = {"alice": "wonder land", "bob": "s3cr€t:colon", "carol": ""}
    for i, (user, password) in enumerate(users.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            ["htpasswd", *create, "-b", *flags.split(), str(path), user, password],
            check=True, capture_output=True,
        )
    htpasswd = HtpasswdFile.from_file(path)
    assert set(htpasswd.users) == set(users)
    for user, password in users.items():
        assert htpasswd.check_password(user, password), (user, htpasswd.users[user])
        assert not htpasswd.check_password(user, password + "x")
    assert not htpasswd.check_password("alice", users["bob"])
