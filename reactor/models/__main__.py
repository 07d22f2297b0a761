"""``python -m reactor.models``: the same as ``python -m reactor models``."""

import sys

from reactor.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["models", *sys.argv[1:]]))
