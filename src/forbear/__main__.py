"""The ``forbear`` command: ``forbear explain ...``.

The demo crawl is the ``forbear-demo`` command of the forbear-testing distribution.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._explain import PROFILES, explain, parse_header_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forbear", description="Retries the way careful HTTP APIs ask for them."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ask = commands.add_parser("explain", help="what forbear would do with one response")
    ask.add_argument("status", help="a status code (503) or an error kind (connect, read_timeout)")
    ask.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    ask.add_argument("--method", default="GET")
    ask.add_argument("--attempt", type=int, default=1, help="which send this answered (1-based)")
    ask.add_argument("--profile", default="default", choices=sorted(PROFILES))
    ask.add_argument("--token", action="store_true", help="a TokenSource can re-exchange on 401")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["demo"]:
        print(
            'forbear: the demo is the forbear-demo command: pip install "forbear-testing[demo]"',
            file=sys.stderr,
        )
        return 2
    args = _parser().parse_args(argv)
    try:
        headers = parse_header_args(args.header)
        _, words = explain(
            args.status,
            headers=headers,
            method=args.method,
            attempt=args.attempt,
            profile=args.profile,
            can_reauth=args.token,
        )
    except ValueError as exc:
        print(f"forbear explain: {exc}", file=sys.stderr)
        return 2
    print(words)
    return 0


if __name__ == "__main__":
    sys.exit(main())
