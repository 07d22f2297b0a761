"""python -m reactor [--version] echo | demo | models

echo: the IO-multiplexing chapter's echo server on the Reactor.
demo: reactor's selectors next to the stdlib's, measured on this machine.
models: the chapter's five IO models, one server each, measured side by side.
"""

import argparse
import sys

import reactor
from reactor.chapter import _echo


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, "reactor echo: <what is wrong>", exit 2."""

    def error(self, message):
        name = self.prog.replace("python -m ", "")
        self.exit(2, f"{name}: {message} (see {self.prog} --help)\n")


def main(argv=None):
    parser = _Parser(
        prog="python -m reactor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"reactor {reactor.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    echo_parser = sub.add_parser(
        "echo",
        help="the chapter's echo server on the Reactor",
        description=_echo.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _echo.add_arguments(echo_parser)
    sub.add_parser("demo", help="show reactor's selectors next to the stdlib's")
    from reactor.models import _cli as models

    models_parser = sub.add_parser(
        "models",
        help="the five IO models, measured side by side",
        description=models.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    models.add_arguments(models_parser)
    args = parser.parse_args(argv)
    if args.command == "echo":
        return _echo.main(args)
    if args.command == "models":
        return models.main(args)
    from reactor.chapter import _demo

    _demo.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
