"""Built-in addons, installed as proxycore.addons."""

from __future__ import annotations

from typing import Any


def default_addons() -> list[Any]:
    """The addons every front end (proxydump, proxyweb) loads, in mitmproxy's order."""
    from proxycore.addons.anticache import AntiCache
    from proxycore.addons.anticomp import AntiComp
    from proxycore.addons.block import Block
    from proxycore.addons.blocklist import BlockList
    from proxycore.addons.browser import Browser
    from proxycore.addons.clientplayback import ClientPlayback
    from proxycore.addons.comment import Comment
    from proxycore.addons.core import Core
    from proxycore.addons.cut import Cut
    from proxycore.addons.dns_resolver import DnsResolver
    from proxycore.addons.export import Export
    from proxycore.addons.intercept import Intercept
    from proxycore.addons.maplocal import MapLocal
    from proxycore.addons.mapremote import MapRemote
    from proxycore.addons.modifybody import ModifyBody
    from proxycore.addons.modifyheaders import ModifyHeaders
    from proxycore.addons.next_layer import NextLayer
    from proxycore.addons.onboarding import Onboarding
    from proxycore.addons.proxyauth import ProxyAuth
    from proxycore.addons.proxyserver import Proxyserver
    from proxycore.addons.readfile import ReadFile
    from proxycore.addons.save import Save
    from proxycore.addons.savehar import SaveHar
    from proxycore.addons.script import ScriptLoader
    from proxycore.addons.serverplayback import ServerPlayback
    from proxycore.addons.stickyauth import StickyAuth
    from proxycore.addons.stickycookie import StickyCookie
    from proxycore.addons.strip_dns_https_records import StripDnsHttpsRecords
    from proxycore.addons.tlsconfig import TlsConfig
    from proxycore.addons.update_alt_svc import UpdateAltSvc
    from proxycore.addons.upstream_auth import UpstreamAuth
    from proxycore.workers.pool import WorkerPool

    return [
        # First, so that at exit its done (which stops the workers and takes in the flows
        # they answered last) runs while Save, the view and proxydump's output are open.
        WorkerPool(),
        Core(),
        Browser(),
        Block(),
        BlockList(),
        AntiCache(),
        AntiComp(),
        ClientPlayback(),
        Comment(),
        Cut(),
        Export(),
        Onboarding(),
        ProxyAuth(),
        Proxyserver(),
        ScriptLoader(),
        DnsResolver(),
        StripDnsHttpsRecords(),
        NextLayer(),
        ServerPlayback(),
        MapRemote(),
        MapLocal(),
        ModifyBody(),
        ModifyHeaders(),
        StickyAuth(),
        StickyCookie(),
        Save(),
        SaveHar(),
        TlsConfig(),
        UpstreamAuth(),
        UpdateAltSvc(),
        ReadFile(),
        Intercept(),
    ]
