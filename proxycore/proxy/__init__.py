"""The proxy kernel: layer base, events, commands, context, modes and the asyncio driver that owns the sockets (mitmproxy.proxy's place)."""
