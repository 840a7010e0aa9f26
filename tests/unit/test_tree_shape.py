"""The tree's shape: no function in the package grows past what one reads at a glance.

Every function and method under plugins/cachebench (nested ones included) is measured
by its body: the lines from its first statement after the docstring to its end. The
aim is about 60 (issue 19); over LIMIT fails, unless EXCEPTIONS names it with why.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "cachebench"
LIMIT = 80
#: "path/from/the/package.py:function" -> why it may be longer (none today)
EXCEPTIONS: dict[str, str] = {}


def _body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = fn.body
    first = body[0]
    if (
        len(body) > 1
        and isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        first = body[1]
    return fn.end_lineno - first.lineno + 1


def _functions() -> dict[str, int]:
    """Body lines of every function, keyed "file:name" (a name repeated in a file keeps
    its longest)."""
    found: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{path.relative_to(PACKAGE).as_posix()}:{node.name}"
                found[key] = max(found.get(key, 0), _body_lines(node))
    return found


def test_no_function_is_longer_than_the_limit() -> None:
    functions = _functions()
    assert len(functions) > 500, "the scan found too few functions: is PACKAGE right?"
    long = {k: n for k, n in functions.items() if n > LIMIT and k not in EXCEPTIONS}
    assert not long, f"split these (body lines > {LIMIT}) or name them in EXCEPTIONS: {long}"


def test_every_exception_is_still_needed() -> None:
    functions = _functions()
    stale = {k for k in EXCEPTIONS if functions.get(k, 0) <= LIMIT}
    assert not stale, f"no longer over {LIMIT} lines (or gone): drop from EXCEPTIONS: {stale}"


def test_the_measure_counts_a_body_without_its_docstring() -> None:
    src = 'def f():\n    """doc\n    more"""\n    a = 1\n    return a\n\ndef g():\n    pass\n'
    f, g = ast.parse(src).body
    assert _body_lines(f) == 2 and _body_lines(g) == 1
