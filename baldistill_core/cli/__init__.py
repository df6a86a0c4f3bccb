"""`baldistill` command line: every UI action has a command-line twin.

Each module in this package adds its verbs with ``register(subparsers, common)``; adding a verb
group touches one new file. ``common`` is a parent parser holding ``--workspace``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from baldistill_core.errors import BalDistillError


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", "-w", default=None,
                        help="workspace folder (default: $BALDISTILL_WORKSPACE or ./workspace)")
    parser = argparse.ArgumentParser(prog="baldistill", description="BalDistill Studio command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        module = importlib.import_module(f"{__name__}.{mod}")
        module.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (BalDistillError, ValueError, FileNotFoundError) as e:
        # Every error the core raises on purpose derives from BalDistillError and names its fix: the
        # message, never a traceback. (ValueError/FileNotFoundError: pydantic and file checks.)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
