"""CLI used by Terraform's local-exec provisioners.

    python -m cachebench.targets.local up --config FILE
    python -m cachebench.targets.local down --state-dir DIR

Prints a JSON summary (never the password) on stdout; exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from cachebench.targets.local.servers import LocalError, down, up


def _interrupt(signum, frame):
    # Turn SIGTERM into an exception so a half-done `up` still cleans up.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cachebench.targets.local")
    sub = ap.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start (or verify) the servers a JSON config describes")
    p_up.add_argument("--config", required=True, type=Path)
    p_down = sub.add_parser("down", help="stop every server and the agent of a state dir")
    p_down.add_argument("--state-dir", required=True, type=Path)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.command == "up":
            try:
                config = json.loads(args.config.read_text())
            except (OSError, ValueError) as e:
                raise LocalError(f"cannot read config {args.config}: {e}") from e
            result = up(config)
        else:
            result = down(args.state_dir.resolve())
    except LocalError as e:
        print(f"cachebench.targets.local {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"cachebench.targets.local {args.command}: interrupted ({e})", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
