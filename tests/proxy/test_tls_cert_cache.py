"""The TLS context cache never hands a client the certificate of another name.

Regression for issue 18 (2): contexts were cached by ``id()`` of cert-store
entries; once the store evicted leaves, new entries could reuse an evicted
entry's id and a client asking for one name got a context for another.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from proxycore import certs
from proxycore.addons.tlsconfig import TlsConfig
from proxycore.connection import Server
from proxycore.layers.tls import TlsData
from proxycore.master import Master
from proxycore.testing import make_context


@pytest.fixture
def master(tmp_path: Path) -> Master:
    m = Master()
    m.options.update(confdir=str(tmp_path / "conf"))
    m.addons.add(TlsConfig())
    return m


def presented_names(addon: TlsConfig, master: Master, sni: str) -> list[str]:
    """The DNS names of the certificate the client side would present for ``sni``."""
    context = make_context(master.options)
    context.client.sni = sni
    context.server = Server(address=("origin.test", 443))
    data = TlsData(context.client, context)
    addon.tls_start_client(data)
    assert data.ssl_conn is not None
    cert = data.ssl_conn.get_certificate()
    assert cert is not None
    san = cert.to_cryptography().extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return san.value.get_values_for_type(x509.DNSName)


def test_every_sni_gets_its_own_certificate_across_store_evictions(master, monkeypatch):
    monkeypatch.setattr(certs, "CACHE_SIZE", 10)
    addon = master.addons.get("tlsconfig")
    wrong = []
    for round_ in range(3):  # later rounds hit names the store already evicted
        for i in range(60):
            sni = f"host{i}.example"
            if sni not in presented_names(addon, master, sni):
                wrong.append((round_, sni))
    assert not wrong
    assert len(addon.certstore.generated) <= 10


def test_same_certificate_reuses_the_context(master):
    addon = master.addons.get("tlsconfig")
    presented_names(addon, master, "same.example")
    count = len(addon._client_contexts)
    presented_names(addon, master, "same.example")
    assert len(addon._client_contexts) == count
