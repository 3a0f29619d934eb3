"""Built-in commands every proxycore master has (mitmproxy's Core addon)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from proxycore import ctx, http, optmanager, types
from proxycore.addons.termlog import ALERT
from proxycore.command import argument, command
from proxycore.exceptions import CommandError, OptionsError
from proxycore.flow import Flow
from proxycore.hooks import UpdateHook
from proxycore.utils import emoji


class Core:
    """set, options.*, and the flow.* commands that change flows."""

    # Flow changes are logged at ALERT level, as mitmproxy does.
    log = logging.getLogger("proxycore.core")
    FLOW_SET_ATTRIBUTES = ("host", "status_code", "method", "path", "url", "reason")
    ENCODINGS = ("gzip", "deflate", "br", "zstd")

    def configure(self, updated: set[str]) -> None:
        """Checks of option combinations that mitmproxy's Core makes."""
        opts = ctx.options
        if updated & {"add_upstream_certs_to_client_chain", "upstream_cert"}:
            if opts.add_upstream_certs_to_client_chain and not opts.upstream_cert:
                raise OptionsError(
                    "add_upstream_certs_to_client_chain requires the upstream_cert option to be enabled."
                )
        if "client_certs" in updated and opts.client_certs:
            if not os.path.exists(os.path.expanduser(opts.client_certs)):
                raise OptionsError(f"Client certificate path does not exist: {opts.client_certs}")

    @command("set")
    def set(self, option: str, *value: str) -> None:
        """Set an option: ``set name value``. Without a value, booleans become true,
        optional strings and integers None and sequences empty; booleans also take
        true, false or toggle. Each value of a sequence option is a word of its own.
        """
        try:
            several = len(value) > 1 and option in ctx.options
            if several and not optmanager._is_sequence(ctx.options.typespec(option)):
                raise OptionsError(f"Received multiple values for {option}: {list(value)}")
            ctx.options.set(*[f"{option}={v}" for v in value] or [option])
        except OptionsError as e:
            raise CommandError(str(e)) from e

    @command("options.reset")
    def options_reset(self) -> None:
        """Reset all options to their defaults."""
        ctx.options.reset()

    @command("options.reset.one")
    def options_reset_one(self, name: str) -> None:
        """Reset one option to its default."""
        if name not in ctx.options:
            raise CommandError(f"No such option: {name}")
        try:
            setattr(ctx.options, name, ctx.options.default(name))
        except OptionsError as e:
            raise CommandError(str(e)) from e

    @command("options.load")
    def options_load(self, path: types.Path) -> None:
        """Load options from a YAML file (as config.yaml)."""
        try:
            optmanager.load_paths(ctx.options, path)
        except (OSError, OptionsError) as e:
            raise CommandError(f"Could not load options - {e}") from e

    @command("options.save")
    def options_save(self, path: types.Path) -> None:
        """Save the options that differ from their defaults to a YAML file."""
        try:
            optmanager.save(ctx.options, path)
        except (OSError, OptionsError) as e:
            raise CommandError(f"Could not save options - {e}") from e

    @command("flow.mark.toggle")
    def mark_toggle(self, flows: Sequence[Flow]) -> None:
        """Mark unmarked flows with the default marker, unmark marked ones."""
        for flow in flows:
            flow.marked = "" if flow.marked else ":default:"
        _updated(flows)

    @command("flow.revert")
    def revert(self, flows: Sequence[Flow]) -> None:
        """Undo the changes made to flows since their backup."""
        reverted = [flow for flow in flows if flow.modified()]
        for flow in reverted:
            flow.revert()
        self.log.log(ALERT, f"Reverted {len(reverted)} flows.")
        _updated(reverted)

    @command("flow.set.options")
    def flow_set_options(self) -> Sequence[str]:
        """The attributes flow.set can change."""
        return list(self.FLOW_SET_ATTRIBUTES)

    @command("flow.set")
    @argument("attr", types.Choice("flow.set.options"))
    def flow_set(self, flows: Sequence[Flow], attr: str, value: str) -> None:
        """Set a request attribute (method, host, path, url) or a response one
        (status_code, reason) on flows.
        """
        if attr not in self.FLOW_SET_ATTRIBUTES:
            raise CommandError(f"Invalid attribute: {attr} (one of {', '.join(self.FLOW_SET_ATTRIBUTES)})")
        status = 0
        if attr == "status_code":
            try:
                status = int(value)
            except ValueError:
                raise CommandError(f"Status code is not an integer: {value}") from None
        changed = []
        for flow in flows:
            request = getattr(flow, "request", None)
            response = getattr(flow, "response", None)
            if attr in ("method", "host", "path", "url") and request is not None:
                self._set_request(request, attr, value)
            elif attr == "status_code" and response is not None:
                response.status_code = status
                if http.reason_phrase(status) != "Unknown":
                    response.reason = http.reason_phrase(status)
            elif attr == "reason" and response is not None:
                response.reason = value
            else:
                continue
            changed.append(flow)
        _updated(changed)
        self.log.log(ALERT, f"Set {attr} on {len(changed)} flows.")

    @command("flow.decode")
    def decode(self, flows: Sequence[Flow], part: str) -> None:
        """Remove the Content-Encoding of the request or response of flows."""
        changed = []
        for flow in flows:
            message = self._message(flow, part)
            if message is not None:
                flow.backup()
                try:
                    message.decode()
                except ValueError as e:
                    raise CommandError(f"Cannot decode the {part} of flow {flow.id}: {e}") from e
                changed.append(flow)
        _updated(changed)
        self.log.log(ALERT, f"Decoded {len(changed)} flows.")

    @command("flow.encode.toggle")
    def encode_toggle(self, flows: Sequence[Flow], part: str) -> None:
        """Decode encoded request or response bodies; encode the others with deflate."""
        changed = []
        for flow in flows:
            message = self._message(flow, part)
            if message is not None:
                flow.backup()
                if message.headers.get("content-encoding", "identity") == "identity":
                    message.encode("deflate")
                else:
                    message.decode(strict=False)
                changed.append(flow)
        _updated(changed)
        self.log.log(ALERT, f"Toggled encoding on {len(changed)} flows.")

    @command("flow.encode")
    @argument("encoding", types.Choice("flow.encode.options"))
    def encode(self, flows: Sequence[Flow], part: str, encoding: str) -> None:
        """Encode the request or response body of flows that are not encoded yet."""
        if encoding not in self.ENCODINGS:
            raise CommandError(f"Invalid encoding: {encoding} (one of {', '.join(self.ENCODINGS)})")
        changed = []
        for flow in flows:
            message = self._message(flow, part)
            if message is not None and message.headers.get("content-encoding", "identity") == "identity":
                flow.backup()
                message.encode(encoding)
                changed.append(flow)
        _updated(changed)
        self.log.log(ALERT, f"Encoded {len(changed)} flows.")

    @command("flow.encode.options")
    def encode_options(self) -> Sequence[str]:
        """The encodings flow.encode can apply."""
        return list(self.ENCODINGS)

    @staticmethod
    def _message(flow: Flow, part: str) -> http.Message | None:
        """``flow.request`` or ``flow.response`` when ``part`` names one that exists."""
        message = getattr(flow, part, None) if part in ("request", "response") else None
        return message if isinstance(message, http.Message) else None

    @staticmethod
    def _set_request(request: http.Request, attr: str, value: str) -> None:
        if attr == "url":
            try:
                request.url = value
            except ValueError as e:
                raise CommandError(f"URL {value!r} is invalid: {e}") from e
        else:
            setattr(request, attr, value)

    @command("flow.resume")
    def resume(self, flows: Sequence[Flow]) -> None:
        """Resume intercepted flows."""
        for flow in flows:
            flow.resume()
        _updated(flows)

    @command("flow.kill")
    def kill(self, flows: Sequence[Flow]) -> None:
        """Kill live flows."""
        killed = [flow for flow in flows if flow.killable]
        for flow in killed:
            flow.kill()
        _updated(killed)

    @command("flow.mark")
    # the catalogue reads the Marker annotation; the default stays a plain str on purpose
    def mark(self, flows: Sequence[Flow], marker: types.Marker = ":default:") -> None:  # type: ignore[assignment]
        """Mark flows with a marker name such as :red_circle: (an empty marker unmarks)."""
        if marker and marker not in emoji.markers():
            raise CommandError("invalid marker value")

        for flow in flows:
            flow.marked = marker
        _updated(flows)


def _updated(flows: Sequence[Flow]) -> None:
    """Tell views (the web UI) that these flows changed, as mitmproxy's commands do."""
    if flows:
        ctx.master.addons.trigger(UpdateHook(list(flows)))
