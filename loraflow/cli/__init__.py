"""The `loraflow` command: each module in this package adds one subcommand group via `register(subparsers)`."""
import argparse
import importlib
import pkgutil
import sys

from loraflow.env import configure_environment


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand module of this package registered."""
    parser = argparse.ArgumentParser(prog="loraflow", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):  # skips __main__
            importlib.import_module(f"{__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen subcommand, and turn user errors into one line and an exit code."""
    configure_environment()
    args = build_parser().parse_args(argv)
    from tasks.errors import LoraflowError

    try:
        return int(args.handler(args) or 0)
    except LoraflowError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
