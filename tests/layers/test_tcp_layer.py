"""Playbook tests of the raw TCP layer."""

from proxycore.connection import Server
from proxycore.layers.tcp import (
    TcpEndHook,
    TcpErrorHook,
    TCPLayer,
    TcpMessageHook,
    TcpMessageInjected,
    TcpStartHook,
)
from proxycore.proxy import commands, events
from proxycore.tcp import TCPFlow, TCPMessage
from proxycore.testing import Placeholder, Playbook, make_context, reply


def test_relay_with_hooks_and_half_close():
    tctx = make_context()
    tctx.server = Server(address=("example.com", 22))
    flow = Placeholder(TCPFlow)
    assert (
        Playbook(TCPLayer(tctx))
        << TcpStartHook(flow)
        >> reply()
        << commands.OpenConnection(tctx.server)
        >> reply(None)
        >> events.DataReceived(tctx.client, b"hello")
        << TcpMessageHook(flow)
        >> reply()
        << commands.SendData(tctx.server, b"hello")
        >> events.DataReceived(tctx.server, b"world")
        << TcpMessageHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"world")
        >> events.ConnectionClosed(tctx.server)
        << commands.CloseTcpConnection(tctx.client, half_close=True)
        >> events.DataReceived(tctx.client, b"still talking")
        << TcpMessageHook(flow)
        >> reply()
        << commands.SendData(tctx.server, b"still talking")
        >> events.ConnectionClosed(tctx.client)
        # the client, half-closed before, is done both ways with its FIN: only the server is left
        << commands.CloseConnection(tctx.server)
        << TcpEndHook(flow)
        >> reply()
    )
    assert [(m.from_client, m.content) for m in flow().messages] == [
        (True, b"hello"),
        (False, b"world"),
        (True, b"still talking"),
    ]
    assert not flow().live


def test_message_hook_can_rewrite():
    tctx = make_context()
    tctx.server = Server(address=("example.com", 22))

    def shout(flow):
        flow.messages[-1].content = flow.messages[-1].content.upper()

    assert (
        Playbook(TCPLayer(tctx))
        << TcpStartHook(Placeholder(TCPFlow))
        >> reply()
        << commands.OpenConnection(tctx.server)
        >> reply(None)
        >> events.DataReceived(tctx.client, b"abc")
        << TcpMessageHook(Placeholder(TCPFlow))
        >> reply(side_effect=shout)
        << commands.SendData(tctx.server, b"ABC")
    )


def test_connect_failure_fires_tcp_error():
    tctx = make_context()
    tctx.server = Server(address=("example.com", 22))
    flow = Placeholder(TCPFlow)
    assert (
        Playbook(TCPLayer(tctx))
        << TcpStartHook(flow)
        >> reply()
        << commands.OpenConnection(tctx.server)
        >> reply("Connection refused")
        << TcpErrorHook(flow)
        >> reply()
        << commands.CloseConnection(tctx.client)
    )
    assert flow().error.msg == "Connection refused"


def test_ignore_has_no_hooks():
    tctx = make_context()
    tctx.server = Server(address=("example.com", 22))
    assert (
        Playbook(TCPLayer(tctx, ignore=True))
        << commands.OpenConnection(tctx.server)
        >> reply(None)
        >> events.DataReceived(tctx.client, b"x")
        << commands.SendData(tctx.server, b"x")
        >> events.ConnectionClosed(tctx.client)
        << commands.CloseTcpConnection(tctx.server, half_close=True)
        >> events.ConnectionClosed(tctx.server)
        << commands.CloseConnection(tctx.client)
    )


def test_an_injected_message_passes_the_tcp_message_hook_before_it_is_sent():
    tctx = make_context()
    tctx.server = Server(address=("example.com", 22))
    flow = Placeholder(TCPFlow)
    playbook = (
        Playbook(TCPLayer(tctx))
        << TcpStartHook(flow)
        >> reply()
        << commands.OpenConnection(tctx.server)
        >> reply(None)
    )
    assert playbook
    message = TCPMessage(False, b"from the server, says the addon")
    assert (
        playbook
        >> TcpMessageInjected(flow(), message)
        << TcpMessageHook(flow)
        >> reply(side_effect=lambda f: setattr(f.messages[-1], "content", b"changed"))
        << commands.SendData(tctx.client, b"changed")
    )
    assert flow().messages == [message]


def test_a_server_that_was_connected_before_is_not_opened_again():
    tctx = make_context()
    tctx.server = Server(address=("example.com", 22), timestamp_start=1.0)
    assert Playbook(TCPLayer(tctx, ignore=True)) >> events.DataReceived(tctx.client, b"x") << commands.SendData(
        tctx.server, b"x"
    )
