"""A small, safe expression language for sweep constraints and derived fields.

Expressions are Python syntax restricted to arithmetic, comparisons, ``and``/``or``/``not``,
numbers, a few functions (``min max abs sqrt log2 log10 round int float``) and dotted names
into the point's resolved config (``hw.memory.channels``, ``hw.bank_mac.flops_per_cycle.bf16``,
``hw.onchip[0].capacity_bytes``) or result metrics (``avg_power_w``). Nothing else parses:
no attribute access on Python objects, no imports, no calls of arbitrary callables.

Evaluation is bounded by design: an expression is at most :data:`MAX_EXPR_CHARS` long,
arithmetic takes numbers only (no string or list products), and an integer result may not
pass :data:`MAX_INT_BITS` bits (``9**9**9`` is refused before it is computed); a float
overflow is an error, not ``inf``.
"""

from __future__ import annotations

import ast
import math
import operator
from functools import lru_cache
from typing import Any

from llmsim.errors import ConfigError

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}
MAX_EXPR_CHARS = 1000
MAX_INT_BITS = 256

_FUNCS = {"min": min, "max": max, "abs": abs, "sqrt": math.sqrt, "log2": math.log2, "log10": math.log10,
          "round": round, "int": int, "float": float}


@lru_cache(maxsize=256)
def _parse(expr: str) -> ast.Expression:
    if len(expr) > MAX_EXPR_CHARS:
        raise ConfigError(f"expression '{expr[:40]}...': longer than {MAX_EXPR_CHARS} characters")
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, MemoryError, RecursionError) as e:
        raise ConfigError(f"expression '{expr}': {getattr(e, 'msg', None) or 'cannot parse'}") from None
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Constant, ast.Name,
               ast.Attribute, ast.Call, ast.Subscript, ast.Load, ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd,
               *_BIN, *_CMP)
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            raise ConfigError(f"expression '{expr}': {type(node).__name__} is not allowed")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCS):
            raise ConfigError(f"expression '{expr}': only {', '.join(_FUNCS)} may be called")
        if isinstance(node, ast.Call) and node.keywords:
            raise ConfigError(f"expression '{expr}': keyword arguments are not allowed")
        if isinstance(node, (ast.Attribute, ast.Subscript)) and not isinstance(
                node.value, (ast.Name, ast.Attribute, ast.Subscript)):
            raise ConfigError(f"expression '{expr}': fields can only be read from names (hw., model., ...)")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str)):
            raise ConfigError(f"expression '{expr}': constant {node.value!r} is not a number or a string")
    return tree


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def names_in(expr: str) -> set[str]:
    """Root names an expression reads (``hw``, ``avg_power_w``, ...), functions excluded."""
    tree = _parse(expr)
    funcs = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in funcs}


def _lookup(node: ast.AST, ctx: dict[str, Any], expr: str) -> Any:
    if isinstance(node, ast.Name):
        if node.id not in ctx:
            raise ConfigError(f"expression '{expr}': unknown name '{node.id}' (known: {', '.join(sorted(ctx))})")
        return ctx[node.id]
    base = _lookup(node.value, ctx, expr)  # type: ignore[attr-defined]
    if isinstance(node, ast.Attribute):
        if not isinstance(base, dict) or node.attr not in base:
            raise ConfigError(f"expression '{expr}': no field '{_dotted(node) or node.attr}'")
        return base[node.attr]
    idx = _eval(node.slice, ctx, expr)  # type: ignore[attr-defined]
    try:
        return base[idx]
    except (KeyError, IndexError, TypeError):
        raise ConfigError(f"expression '{expr}': no item [{idx!r}]") from None


def _number(x: Any, expr: str) -> int | float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ConfigError(f"expression '{expr}': arithmetic on {type(x).__name__} {str(x)[:30]!r}; numbers only")
    return x


def _arith(op: ast.operator, a: Any, b: Any, expr: str) -> int | float:
    """``a op b`` on numbers, refusing an integer result wider than MAX_INT_BITS before computing it."""
    a, b = _number(a, expr), _number(b, expr)
    if isinstance(a, int) and isinstance(b, int):
        bits = a.bit_length() + b.bit_length()
        if isinstance(op, ast.Pow):
            bits = b * max(a.bit_length(), 1) if b > 0 else 0
        if bits > MAX_INT_BITS and isinstance(op, (ast.Pow, ast.Mult)):
            raise ConfigError(f"expression '{expr}': integer result would exceed {MAX_INT_BITS} bits")
    try:
        out = _BIN[type(op)](a, b)
    except OverflowError:
        raise ConfigError(f"expression '{expr}': number too large") from None
    if isinstance(out, complex):
        raise ConfigError(f"expression '{expr}': complex result")
    if isinstance(out, float) and not math.isfinite(out):
        raise ConfigError(f"expression '{expr}': result is not finite")
    return out


def _eval(node: ast.AST, ctx: dict[str, Any], expr: str) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body, ctx, expr)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)):
        return _lookup(node, ctx, expr)
    if isinstance(node, ast.BinOp):
        return _arith(node.op, _eval(node.left, ctx, expr), _eval(node.right, ctx, expr), expr)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, ctx, expr)
        return (not v) if isinstance(node.op, ast.Not) else (-v if isinstance(node.op, ast.USub) else +v)
    if isinstance(node, ast.BoolOp):
        vals = (_eval(v, ctx, expr) for v in node.values)
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, ctx, expr)
        for op, right_node in zip(node.ops, node.comparators, strict=False):
            right = _eval(right_node, ctx, expr)
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        return _FUNCS[node.func.id](*(_eval(a, ctx, expr) for a in node.args))  # type: ignore[attr-defined]
    raise ConfigError(f"expression '{expr}': cannot evaluate {type(node).__name__}")


def evaluate(expr: str, ctx: dict[str, Any], where: str = "") -> Any:
    """Evaluate ``expr`` over ``ctx`` (root name -> nested dicts/lists/numbers)."""
    try:
        return _eval(_parse(expr), ctx, expr)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}" if where else str(e)) from None
    except (TypeError, ArithmeticError, ValueError, RecursionError, MemoryError) as e:
        raise ConfigError(f"{where or 'expression'} '{expr}': {e}") from None
