"""`python -m keyresponse.sandbox`: the sandbox without the keyresponse CLI
(same flags as `keyresponse sandbox`)."""

from __future__ import annotations

import argparse
import sys

from keyresponse.sandbox import parse_fault, serve_forever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keyresponse.sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = a free one)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--state", metavar="FILE", help="load state from FILE if it exists; save it on exit")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="SERVICE:METHOD:PATH:KIND[:k=v,...] or JSON (repeatable)")
    parser.add_argument("--json", action="store_true", help="print URLs and env as one JSON line first")
    parser.add_argument("--write-config", metavar="DIR", help="write DIR/keyresponse.yaml and DIR/sandbox.env")
    args = parser.parse_args(argv)
    for spec in args.fault:
        try:
            parse_fault(spec)
        except ValueError as exc:
            parser.error(f"--fault {spec!r}: {exc}")
    return serve_forever(args.port, args.seed, args.state, args.fault, args.json, args.write_config)


if __name__ == "__main__":
    sys.exit(main())
