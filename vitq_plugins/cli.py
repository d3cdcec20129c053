"""The ``vitq`` command line.

Listing commands (``plugins``, ``quantizers``, ``recipes``, ``models``, ``datasets``, ``backends``) are
built in; the work commands (``eval``, ``quantize``, ``sensitivity``, ``search``, ...) live in
``vitq_plugins.commands.<module>`` (``add_arguments(parser)`` + ``run(args) -> int``) and are imported
only when invoked. Bad usage or bad input: one line on stderr, exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import importlib
import importlib.util
import json
import sys
from typing import Any
from typing import NoReturn

from vitq_plugins.core.errors import VitqError

__all__ = ["main", "COMMANDS"]

#: Work commands: name → (module under vitq_plugins.commands, help).
COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("evaluate", "evaluate a float model on a dataset"),
    "quantize": ("quantize", "quantize, calibrate, evaluate (and export) a model"),
    "sensitivity": ("sensitivity", "per-layer sensitivity to lower bit-widths"),
    "search": ("search", "mixed-precision search (greedy or ILP) under a budget"),
}

_LISTINGS = ("quantizers", "recipes", "transforms", "models", "datasets", "backends", "model_adapters")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _available_commands() -> dict[str, tuple[str, str]]:
    out = {}
    for name, (mod, help_) in COMMANDS.items():
        try:
            found = importlib.util.find_spec(f"vitq_plugins.commands.{mod}") is not None
        except ModuleNotFoundError:
            found = False
        if found:
            out[name] = (mod, help_)
    return out


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, tuple[str, str]]]:
    parser = _Parser(prog="vitq", description="ViT quantizers as plugins for Brevitas and torch.ao FX")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("plugins", help="list loaded plugins (name, version, origin, hooks)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    for kind in _LISTINGS:
        p = sub.add_parser(kind, help=f"list registered {kind}")
        p.add_argument("--filter", default=None, metavar="GLOB", help="fnmatch filter on names")
        p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    commands = _available_commands()
    for name, (mod, help_) in commands.items():
        p = sub.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="one JSON object on stdout")
        p.set_defaults(_module=mod)
        # Arguments of work commands are added lazily (see main), so `vitq --help` stays fast.
    return parser, commands


def _emit(data: Any, as_json: bool, rows: list[list[str]] | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    for row in rows or []:
        print("  ".join(row))


def _list(kind: str, filter_: str | None, as_json: bool) -> int:
    from vitq_plugins.core.manager import get_host

    host = get_host()
    reg = host.registry(kind)
    items = [entry.to_dict() for name, entry in reg.items() if name in set(reg.list(filter_))]
    if kind == "quantizers":
        rows = [
            [
                d["name"].ljust(11),
                f"{d['bits'][0]}-{d['bits'][1]}b".ljust(7),
                ",".join(d["sites"]).ljust(28),
                ",".join(d["backends"]).ljust(12),
                d["description"],
            ]
            for d in items
        ]
    elif kind == "recipes":
        rows = [[d["name"].ljust(8), d["description"]] for d in items]
    else:
        rows = [[d["name"].ljust(20), d["description"]] for d in items]
    _emit(items, as_json, rows)
    _warn_failures(host)
    return 0


def _warn_failures(host: Any) -> None:
    for f in host.failures:
        print(f"vitq: warning: plugin {f.name!r} ({f.origin}) failed to load: {f.error}", file=sys.stderr)


def _plugins(as_json: bool) -> int:
    from vitq_plugins.core.manager import get_host

    host = get_host()
    plugins = host.plugins()
    failures = [{"name": f.name, "origin": f.origin, "error": f.error} for f in host.failures]
    if as_json:
        _emit({"plugins": plugins, "failures": failures}, True)
        return 0
    for p in plugins:
        print(f"{p['name']:<34} {p['version']:<10} {p['origin']:<24} {', '.join(p['hooks'])}")
    _warn_failures(host)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vitq`` console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser, commands = _build_parser()
    # Work commands: give their module a parser of its own so it can add its arguments.
    if args_list and args_list[0] in commands:
        from vitq_plugins.commands._output import configure
        from vitq_plugins.commands._output import log_path
        from vitq_plugins.commands._output import one_line

        name = args_list[0]
        configure(verbose="--verbose" in args_list[1:])  # before the imports that warn
        mod = importlib.import_module(f"vitq_plugins.commands.{commands[name][0]}")
        sub = _Parser(prog=f"vitq {name}", description=commands[name][1])
        mod.add_arguments(sub)
        if not any(a.dest == "json" for a in sub._actions):
            sub.add_argument("--json", action="store_true", help="one JSON object on stdout")
        sub.add_argument(
            "--verbose",
            action="store_true",
            help=f"third-party warnings and log records on stderr (default: in {log_path()})",
        )
        args = sub.parse_args(args_list[1:])
        try:
            code: int = mod.run(args)
        except VitqError as exc:
            print(f"vitq {name}: error: {one_line(str(exc))}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"vitq {name}: interrupted", file=sys.stderr)
            return 130
        return code
    ns = parser.parse_args(args_list)
    if ns.version:
        from vitq_plugins import __version__

        print(__version__)
        return 0
    try:
        if ns.command == "plugins":
            return _plugins(ns.json)
        if ns.command in _LISTINGS:
            return _list(ns.command, ns.filter, ns.json)
    except VitqError as exc:
        print(f"vitq {ns.command}: error: {exc}", file=sys.stderr)
        return 2
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
