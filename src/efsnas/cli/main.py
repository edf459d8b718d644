"""`efsnas` entry point: dispatches to one module per subcommand.

Every subcommand module defines `add_parser(subparsers)` and `run(args) -> int`. User errors
(EfsnasError) are printed on one line, never as a traceback; usage errors exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from efsnas.errors import EfsnasError

# Order is the order of `efsnas --help`; modules are imported only when present.
COMMANDS = ["run", "space", "train", "evaluate", "correlate", "search", "retrain", "groundtruth",
            "compare", "export"]


def build_parser() -> argparse.ArgumentParser:
    """The `efsnas` argument parser with one subcommand per module of COMMANDS."""
    parser = argparse.ArgumentParser(
        prog="efsnas",
        description="Few-shot NAS by counting nonlinear functions: split, train, rank, search.",
    )
    parser.add_argument("--version", action="version", version=f"efsnas {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"efsnas.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"efsnas.cli.{name}":
                continue
            raise
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def _shutdown_distributed() -> None:
    import sys as _sys

    if "torch.distributed" in _sys.modules:  # only when a command used it
        from efsnas.train.distributed import shutdown

        shutdown()


def _version() -> str:
    from efsnas import __version__

    return __version__


def _short(message: str, limit: int = 600) -> str:
    """One line, long inputs elided in the middle."""
    line = " ".join(message.split())
    return line if len(line) <= limit else f"{line[:limit // 2]} ... {line[-limit // 2:]}"


def main(argv: list[str] | None = None) -> int:
    """Run the `efsnas` command line (`efsnas run` when no arguments are given); returns the exit
    code, user errors printed on one line."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["run"]  # the main job: `efsnas` alone behaves like `efsnas run`
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    try:
        code = int(args._run(args) or 0)
        _shutdown_distributed()
        return code
    except EfsnasError as e:
        print(f"efsnas {args.command}: error: {_short(str(e))}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # a read-only folder, a full disk, a path that vanished
        where = f" {e.filename}" if e.filename else ""
        print(f"efsnas {args.command}: error: cannot use{where}: {e.strerror or e}; check the "
              "path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"efsnas {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        from efsnas.fileio import FolderLock

        FolderLock.release_all()


if __name__ == "__main__":
    sys.exit(main())
