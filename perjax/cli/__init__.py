"""The `perjax` command. Each subcommand lives in its own module of this package.

A subcommand module defines `register(subparsers)`, which adds its parser and sets `func` (a
callable taking the parsed args and returning an exit code or None).
"""
import argparse
import importlib
import sys

from perjax.cli.environment import apply_command_defaults
from perjax.errors import PerjaxError
from perjax.registry import UnknownNameError

_COMMAND_MODULES = ("listing", "models", "generate", "bench", "evaluate", "data", "experiment",
                    "export", "runs", "plan")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="perjax", description="perjax: personalization of LLMs in JAX")
  subparsers = parser.add_subparsers(dest="command", required=True)
  for name in _COMMAND_MODULES:
    module_name = f"perjax.cli.{name}"
    try:
      module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
      if e.name == module_name:
        continue  # a command module not present in this build
      raise
    module.register(subparsers)
  return parser


def main(argv=None) -> int:
  apply_command_defaults()  # before the command modules import JAX or transformers
  parser = build_parser()
  args = parser.parse_args(argv)
  args.argv = list(sys.argv[1:] if argv is None else argv)  # to launch this command again
  try:
    code = args.func(args)
  except (PerjaxError, UnknownNameError) as e:
    print(f"perjax {args.command}: error: {e}", file=sys.stderr)
    return 2
  except FileNotFoundError as e:
    print(f"perjax {args.command}: error: file not found: {e.filename or e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f"perjax {args.command}: interrupted", file=sys.stderr)
    return 130
  return int(code or 0)


if __name__ == "__main__":
  sys.exit(main())
