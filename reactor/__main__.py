"""python -m reactor echo | demo

echo: the IO-multiplexing chapter's echo server on the Reactor.
demo: reactor's selectors next to the stdlib's, measured on this machine.
"""

import argparse
import sys

from reactor import _echo


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, "reactor echo: <what is wrong>", exit 2."""

    def error(self, message):
        name = self.prog.replace("python -m ", "")
        self.exit(2, f"{name}: {message} (see {self.prog} --help)\n")


def main(argv=None):
    parser = _Parser(prog="python -m reactor", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    echo_parser = sub.add_parser("echo", help="the chapter's echo server on the Reactor",
                                 description=_echo.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    _echo.add_arguments(echo_parser)
    sub.add_parser("demo", help="show reactor's selectors next to the stdlib's")
    args = parser.parse_args(argv)
    if args.command == "echo":
        return _echo.main(args)
    from reactor import _demo
    _demo.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
