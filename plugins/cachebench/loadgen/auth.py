"""Getting the AUTH password to a load generator without writing it into our argv.

Neither memtier_benchmark (2.x) nor redis-benchmark (7.0, checked against a real
server with requirepass: it ignores REDISCLI_AUTH) can read a password from the
environment or a file: both only take it on their command line. So:

* the password travels in the environment variable AUTH_ENV, never in the argv
  we build, log, store in XCom or put in an ECS task definition;
* the argv is wrapped in ``/bin/sh -c 'exec "$0" "$@" <flag> "$AUTH_ENV"' tool args...``:
  the shell expands the variable and execs the tool (same pid, no shell left).
  The arguments are passed as positional parameters, never interpolated into
  the script, so nothing needs quoting.

Limitation (tool-imposed, not fixable here): once exec'd, the tool's own
/proc/<pid>/cmdline holds the password, readable by other users of the same host
(or container) for the duration of the run. Use mask_argv for anything printed.
"""

from __future__ import annotations

from collections.abc import Sequence

AUTH_ENV = "CACHEBENCH_AUTH"
MASK = "********"
SHELL = "/bin/sh"


def wrap_with_env_auth(argv: Sequence[str], flag: str) -> list[str]:
    """argv run through /bin/sh so that `flag "$AUTH_ENV"` is appended at exec time.

    flag is the tool's option, e.g. "--authenticate=" (joined) or "-a" (separate).
    """
    auth = f'{flag}"${AUTH_ENV}"' if flag.endswith("=") else f'{flag} "${AUTH_ENV}"'
    return [SHELL, "-c", f'exec "$0" "$@" {auth}', *argv]


def unwrap(argv: Sequence[str]) -> list[str]:
    """The tool's own argv (without the auth flag) from a possibly wrapped argv."""
    if len(argv) >= 3 and argv[0] == SHELL and argv[1] == "-c":
        return list(argv[3:])
    return list(argv)


def mask_argv(argv: Sequence[str], secret: str | None) -> list[str]:
    """argv with every occurrence of secret replaced by a mask (for logs)."""
    if not secret:
        return list(argv)
    return [a.replace(secret, MASK) for a in argv]
