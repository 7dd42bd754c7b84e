"""The ``spinemets`` command: headless access to every SpineMets job.

The subcommands live in :mod:`SpineMetsApp.commands` (one file per concern) and
are listed once in :data:`SpineMetsApp.commands.COMMANDS`. Only the file of the
dispatched command is imported, so ``spinemets --help`` and
``spinemets segment --help`` start without pandas, scikit-learn, torch or SHAP.

Exit status: 0 success; 1 partial failure where a command documents it
(``features``: some cases failed); 2 unusable input, i.e. any
:class:`~SpineMetsCore.errors.SpineMetsError` or unreadable file, reported as one
``spinemets <command>: error: <message>`` line on stderr without a traceback
(argparse's own usage errors are 2 as well); 3 an internal error (a bug: one
line, the traceback only with ``-v``); 130/143 interrupted (Ctrl-C / SIGTERM),
after the atomic writers removed their temporary files.

VTK/MRML messages go through :mod:`logging` (never raw ``ERR|`` lines).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Iterable, Sequence

from SpineMetsCore.errors import SpineMetsError

from .commands import COMMANDS

logger = logging.getLogger("spinemets")

EXIT_OK, EXIT_PARTIAL, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143

# Flags whose values are coordinate lists: "-12.5,3,40" must not be mistaken for an option.
COORDINATE_FLAGS: tuple[str, ...] = ("--seed-ras", "--roi-ras")


def join_coordinate_values(argv: Sequence[str], flags: Sequence[str] = COORDINATE_FLAGS) -> list[str]:
    """Rewrite ``--flag -1,2,3`` as ``--flag=-1,2,3`` so negative coordinates parse."""
    out: list[str] = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        token = argv[i]
        if token in flags and i + 1 < len(argv):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def dispatched_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first non-option token), if any."""
    for token in argv:
        if token == "--":
            return None
        if not token.startswith("-"):
            return token
    return None


def build_parser(load: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``spinemets`` parser; full arguments only for the commands in ``load`` (None: all).

    The other commands are listed with their help line only, so their files are
    not imported.
    """
    wanted = {COMMANDS[name].module for name in (COMMANDS if load is None else load) if name in COMMANDS}
    parser = argparse.ArgumentParser(
        prog="spinemets",
        description="SpineMets: spinal MRI lesion segmentation, features and classifiers (headless).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    registered: set[str] = set()
    for name, command in COMMANDS.items():
        if command.module not in wanted:
            sub.add_parser(name, help=command.help, add_help=False)
        elif command.module not in registered:
            importlib.import_module(f"{__package__}.commands.{command.module}").register(sub)
            registered.add(command.module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``spinemets`` command and return its exit status (see the module docstring)."""
    argv = join_coordinate_values(sys.argv[1:] if argv is None else argv)
    command = dispatched_command(argv)
    parser = build_parser([command] if command else [])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    label = getattr(args, "command_label", None) or args.command
    _route_native_messages()
    previous = _terminate_as_exit()
    try:
        return int(args.func(args) or EXIT_OK)
    except (SpineMetsError, OSError) as exc:
        print(f"spinemets {label}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print(f"spinemets {label}: interrupted; unfinished outputs were not written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print(f"spinemets {label}: terminated; unfinished outputs were not written", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:  # noqa: BLE001 - a bug must still end in one clear line, not a traceback
        logger.debug("internal error", exc_info=True)
        print(f"spinemets {label}: internal error: {type(exc).__name__}: {exc} "
              "(this is a bug in SpineMets; rerun with -v for the traceback and report it)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(BaseException):
    """SIGTERM as an exception, so ``finally`` blocks (temporary-file cleanup) run."""


def _terminate_as_exit() -> object | None:
    def handler(_signum: int, _frame: object) -> None:
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        return None


def _route_native_messages() -> None:
    from SpineMetsCore.native import route_vtk_messages_to_logging

    try:
        route_vtk_messages_to_logging()
    except ImportError:  # VTK missing: the command will say so when it needs it
        pass


if __name__ == "__main__":
    sys.exit(main())
