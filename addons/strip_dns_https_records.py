"""DNS answers: take ECH keys (``strip_ech``) and HTTP/3 ALPNs out of HTTPS records.

A client given ECH keys encrypts its real ClientHello, so the proxy could not learn the
server name to make a certificate for; a client told a server speaks h3 may go around the
proxy over QUIC, which proxycore intercepts only in reverse mode (so h3 is taken out whatever
the ``http3`` option says; mitmproxy keeps it while ``http3`` is on)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # DNS flows exist only once a DNS layer imported it
    from proxycore.dns import DNSFlow


class StripDnsHttpsRecords:
    def load(self, loader: Any) -> None:
        loader.add_option(
            "strip_ech", bool, True,
            "Remove Encrypted ClientHello keys from DNS HTTPS records, so that the proxy sees the "
            "server names it needs for certificates.",
        )

    def dns_response(self, flow: DNSFlow) -> None:
        from proxycore import ctx
        from proxycore.net.dns import types

        if flow.response is None:
            return
        for answer in flow.response.answers:
            if answer.type != types.HTTPS:
                continue
            try:
                if ctx.options.strip_ech and answer.https_ech is not None:
                    answer.https_ech = None
                alpn = answer.https_alpn
                if alpn is not None and any(a.startswith(b"h3") for a in alpn):
                    kept = tuple(a for a in alpn if not a.startswith(b"h3"))
                    answer.https_alpn = kept or None
            except ValueError:
                continue  # a malformed record is passed on as it came
