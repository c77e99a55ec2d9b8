"""The daily loop reads as named steps: no function of ``live/loop.py`` outgrows a screen."""

from __future__ import annotations

import ast
import inspect

from py_finance.live import loop

SCREEN = 60  # lines of a function, its docstring aside


def function_lengths(source: str) -> dict[str, int]:
    """Lines of each function in ``source``, from ``def`` to its end, less its docstring."""
    lengths = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0]
            doc = ast.get_docstring(node, clean=False) is not None
            skip = (first.end_lineno or first.lineno) - first.lineno + 1 if doc else 0
            lengths[node.name] = (node.end_lineno or node.lineno) - node.lineno + 1 - skip
    return lengths


def test_function_lengths_leave_out_the_docstring_only():
    source = (
        'def f(x):\n    """Doc\n    string."""\n    y = x\n    return y\n\n\n'
        "def g():\n    return 1\n"
    )
    assert function_lengths(source) == {"f": 3, "g": 2}


def test_every_function_of_the_live_loop_fits_on_one_screen():
    lengths = function_lengths(inspect.getsource(loop))
    assert {"run_live_day", "_trade"} <= set(lengths)
    too_long = {name: n for name, n in lengths.items() if n > SCREEN}
    assert not too_long, f"split these into named steps: {too_long}"
