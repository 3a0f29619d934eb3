"""Calls addons' hook handlers, in chain order, cheaply and without letting one addon break others."""

from __future__ import annotations

import inspect
import logging
import traceback
import types
from collections.abc import Callable, Sequence
from typing import Any

from proxycore import hooks
from proxycore.exceptions import AddonHalt, OptionsError

logger = logging.getLogger("proxycore.addons")


def addon_name(addon: Any) -> str:
    name = getattr(addon, "name", None)
    if isinstance(name, str) and name:
        return name
    if isinstance(addon, types.ModuleType):
        return addon.__name__
    return type(addon).__name__.lower()


def _traverse(addons: Sequence[Any]) -> list[Any]:
    """The addons and their nested ``addons`` lists, parent first."""
    result: list[Any] = []
    for addon in addons:
        result.append(addon)
        children = getattr(addon, "addons", None)
        if isinstance(children, (list, tuple)):
            result.extend(_traverse(children))
    return result


class Loader:
    """Handed to an addon's ``load``: declares its options and commands."""

    def __init__(self, master: Any) -> None:
        self.master = master

    def add_option(
        self,
        name: str,
        typespec: Any,
        default: Any,
        help: str,
        choices: Sequence[str] | None = None,
        check: Callable[[Any], None] | None = None,
    ) -> None:
        options = self.master.options
        if name in options:
            if options.typespec(name) != typespec:
                raise OptionsError(f"Option {name} is already declared with another type")
            return
        options.add_option(name, typespec, default, help, choices, check)

    def add_command(self, path: str, func: Callable[..., Any]) -> None:
        self.master.commands.add(path, func)


#: Hooks every addon gets, whatever its ``hooks_active`` says.
LIFECYCLE_HOOKS = frozenset({"load", "configure", "running", "done"})


class AddonManager:
    """The chain of addons; ``trigger_event`` runs a hook through every addon that has it."""

    def __init__(self, master: Any) -> None:
        self.master = master
        self.chain: list[Any] = []
        self.lookup: dict[str, Any] = {}
        # Hook name -> handlers(name), filled on first use and emptied when the chain or
        # an addon's hooks_active may have changed. Public for the driver, which asks it
        # for every hook a request raises: a dict lookup costs less than the call.
        self.hook_index: dict[str, list[tuple[Any, Callable[..., Any]]]] = {}
        # Hook class -> what the driver needs to answer it at once (see hook_plan). Emptied
        # in place with the index, so that a driver may hold this dict itself.
        self.hook_plans: dict[type, tuple[str | None, tuple[Callable[..., Any], ...] | None]] = {}
        master.options.changed.append(self._options_changed)

    # chain management ----------------------------------------------------------

    def get(self, name: str) -> Any:
        return self.lookup.get(name.lower())

    def __contains__(self, addon: Any) -> bool:
        """Whether an addon of this name is loaded (mitmproxy compares names, not objects)."""
        return addon_name(addon).lower() in self.lookup

    def register(self, addon: Any) -> None:
        """Load ``addon`` (options, commands) without putting it in the chain, as mitmproxy's
        ``register``: test helpers then call its hooks one at a time."""
        self._register(addon)

    def add(self, *addons: Any) -> None:
        for addon in addons:
            self._register(addon)
            self.chain.append(addon)
        for addon in addons:
            for item in _traverse([addon]):
                self._call_sync(item, "configure", set(self.master.options.keys()))
        self._rebuild_index()  # after configure: an addon may add or drop hooks there

    def _register(self, addon: Any) -> None:
        loader = Loader(self.master)
        for item in _traverse([addon]):
            name = addon_name(item).lower()
            if name in self.lookup:
                raise ValueError(f"An addon called '{name}' already exists.")
            self.lookup[name] = item
            self._call_sync(item, "load", loader)
            self.master.commands.collect_commands(item)

    def register_nested(self, parent: Any, child: Any) -> None:
        """Add ``child`` below ``parent`` at run time (used by the script loader)."""
        self._register(child)
        for item in _traverse([child]):
            self._call_sync(item, "configure", set(self.master.options.keys()))
        self._rebuild_index()

    def unregister_nested(self, child: Any) -> None:
        for item in _traverse([child]):
            self.lookup.pop(addon_name(item).lower(), None)
            self._call_sync(item, "done")
        self._rebuild_index()

    def remove(self, addon: Any) -> None:
        self.unregister_nested(addon)
        self.chain.remove(addon)
        self._rebuild_index()

    def refresh_hooks(self) -> None:
        """Re-read every addon's ``hooks_active``: for state that changes outside configure
        (e.g. flows loaded for server replay by a command)."""
        self._rebuild_index()

    def _rebuild_index(self) -> None:
        """Forget the hook index; it is rebuilt one hook name at a time, on first use."""
        self.hook_index = {}
        self.hook_plans.clear()

    def handlers(self, name: str) -> list[tuple[Any, Callable[..., Any]]]:
        """(addon, bound method) for every addon implementing hook ``name``, in chain order.

        An addon whose ``hooks_active`` is false (read when the index is built, i.e. after
        each configure) gets only the lifecycle hooks: a default addon switched off by its
        options then costs nothing per request, and a hook nobody wants is answered by the
        driver without a task.
        """
        found = self.hook_index.get(name)
        if found is None:
            found = []
            lifecycle = name in LIFECYCLE_HOOKS
            for addon in _traverse(self.chain):
                if not lifecycle and not getattr(addon, "hooks_active", True):
                    continue
                handler = getattr(addon, name, None)
                if handler is not None and callable(handler):
                    found.append((addon, handler))
            self.hook_index[name] = found
        return found

    def hook_plan(self, cls: type[hooks.Hook]) -> tuple[str | None, tuple[Callable[..., Any], ...] | None]:
        """For the driver, which asks before every hook whether it can answer it at once:
        ``(name, gates)``, kept in ``hook_plans`` until the index is rebuilt.

        ``name`` is the field of a one-argument hook (all HTTP hooks: the flow), else
        None. ``gates`` are the ``gate`` functions of the hook's handlers when every
        handler has one (empty: nobody listens), else None (the handlers must run)."""
        plan = self.hook_plans.get(cls)
        if plan is None:
            names = hooks.arg_names(cls)
            found = [getattr(handler, "gate", None) for _, handler in self.handlers(cls.name)]
            gates = None if None in found else tuple(gate for gate in found if gate is not None)
            plan = self.hook_plans[cls] = (names[0] if len(names) == 1 else None, gates)
        return plan

    def has_handlers(self, name: str) -> bool:
        return bool(self.handlers(name))

    # dispatch ------------------------------------------------------------------

    def _report(self, addon: Any, hook_name: str, e: BaseException) -> None:
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        logger.error(f"Addon error in {addon_name(addon)}.{hook_name}: {e}\n{tb.rstrip()}")

    def _call_sync(self, addon: Any, name: str, *args: Any) -> None:
        handler = getattr(addon, name, None)
        if handler is None or not callable(handler):
            return
        try:
            result = handler(*args)
        except OptionsError:
            raise
        except Exception as e:
            self._report(addon, name, e)
            return
        if inspect.isawaitable(result):
            logger.error(f"Addon error in {addon_name(addon)}.{name}: {name} must not be async")
            close = getattr(result, "close", None)
            if close:
                close()

    def invoke_addon_sync(self, addon: Any, hook: hooks.Hook) -> None:
        """Run one hook on one addon and its nested addons only (errors are logged)."""
        for item in _traverse([addon]):
            self._call_sync(item, hook.name, *hook.args())

    async def invoke_addon(self, addon: Any, hook: hooks.Hook) -> None:
        """Run one hook on one addon and its nested addons, awaiting async handlers."""
        for item in _traverse([addon]):
            handler = getattr(item, hook.name, None)
            if handler is not None and callable(handler):
                result = handler(*hook.args())
                if inspect.isawaitable(result):
                    await result

    def trigger(self, hook: hooks.Hook) -> None:
        """Synchronous dispatch, for lifecycle hooks outside the event loop."""
        args = hook.args()
        for addon, handler in self.handlers(hook.name):
            try:
                handler(*args)
            except AddonHalt:
                return
            except OptionsError:
                raise
            except Exception as e:
                self._report(addon, hook.name, e)

    async def trigger_event(self, hook: hooks.Hook) -> None:
        handlers = self.handlers(hook.name)
        if not handlers:
            return
        args = hook.args()
        for addon, handler in handlers:
            try:
                result = handler(*args)
                if inspect.isawaitable(result):
                    await result
            except AddonHalt:
                return
            except Exception as e:
                self._report(addon, hook.name, e)

    async def handle_lifecycle(self, hook: hooks.Hook) -> None:
        """Run a hook, then tell ``update`` listeners about the flow it concerned."""
        await self.trigger_event(hook)
        if self.has_handlers("update"):
            from proxycore.flow import Flow

            flows = [a for a in hook.args() if isinstance(a, Flow)]
            if flows:
                await self.trigger_event(hooks.UpdateHook(flows))

    def handle_now(self, hook: hooks.Hook) -> Any:
        """``handle_lifecycle`` without a task, for the driver: the handlers run at once.

        None when every handler (and ``update``'s) returned without an awaitable; otherwise
        a coroutine that awaits the first awaitable and runs the handlers after it, to be
        awaited by the caller.  Most handlers are plain functions, and a task per hook
        costs more than the handlers of the built-in addons."""
        args = hook.args()
        rest = self._run_now(hook.name, self.handlers(hook.name), args)
        flows = None
        if self.has_handlers("update"):
            from proxycore.flow import Flow

            flows = [a for a in args if isinstance(a, Flow)]
        if rest is not None:
            return self._finish(hook.name, rest, flows)
        if not flows:
            return None
        rest = self._run_now("update", self.handlers("update"), [flows])
        return None if rest is None else self._finish("update", rest, None)

    def _run_now(self, name: str, handlers: list[tuple[Any, Callable[..., Any]]], args: Any) -> Any:
        """Call ``handlers`` in order until one returns an awaitable; what is left, if any."""
        for i, (addon, handler) in enumerate(handlers):
            try:
                result = handler(*args)
            except AddonHalt:
                return None
            except Exception as e:
                self._report(addon, name, e)
                continue
            if inspect.isawaitable(result):
                return (addon, result, handlers[i + 1 :], args)
        return None

    async def _finish(self, name: str, rest: Any, flows: list[Any] | None) -> None:
        while rest is not None:
            addon, awaitable, handlers, args = rest
            try:
                await awaitable
            except AddonHalt:
                break
            except Exception as e:
                self._report(addon, name, e)
            rest = self._run_now(name, handlers, args)
        if flows:
            await self.trigger_event(hooks.UpdateHook(flows))

    def _options_changed(self, updated: set[str]) -> None:
        for addon in _traverse(self.chain):
            self._call_sync(addon, "configure", updated)
        self._rebuild_index()
