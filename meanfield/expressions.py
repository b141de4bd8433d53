"""Targets written as expressions of the inputs, parsed without ``eval``.

A user's task in a config file gives its regression target as text, such as
``"sin(x0_0) * x1_1 + 0.5 * x2_0"``. A config file is data, so the text is never executed: it is parsed
by :func:`ast.parse` (which only builds a syntax tree) and every node is checked against a whitelist and
turned into a small evaluator object that calls NumPy. Nothing else can run.

Grammar:

- inputs: ``x{lag}_{component}``, both counted from 0, so ``x1_0`` is component 0 of X_{k-1}; for scalar
  inputs also ``x{lag}`` (``x0`` is X_k). Windows are stored oldest first (``theory_notes/model.md``
  section 1), so ``x{lag}_{c}`` is ``h[..., lags - lag, c]`` of an array h (..., lags + 1, d);
- numbers; ``+ - * / **``; unary ``+ -``; parentheses;
- the functions ``sin cos tan exp log sqrt tanh abs sign`` (one argument) and ``min max`` (two or more,
  elementwise).

Everything else (names, attributes, subscripts, keywords, comparisons, other operators) is refused with a
one-line :class:`ValueError` that starts with the field's name and names the offending token.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import numpy as np

FUNCTIONS = {"sin": np.sin, "cos": np.cos, "tan": np.tan, "exp": np.exp, "log": np.log, "sqrt": np.sqrt,
             "tanh": np.tanh, "abs": np.abs, "sign": np.sign, "min": np.minimum, "max": np.maximum}
VARIADIC = ("min", "max")
OPERATORS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Pow: np.power}
OPERATOR_TEXT = {ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
                 ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.Invert: "~", ast.Not: "not"}
MAX_LENGTH = 2000
MAX_DEPTH = 64
_VARIABLE = re.compile(r"x(0|[1-9][0-9]*)(?:_(0|[1-9][0-9]*))?")
_ALLOWED = "allowed: " + ", ".join(FUNCTIONS)
_VARIABLES = "inputs are x{lag}_{component}, e.g. x1_0; scalar inputs may use x{lag}"


class _Node:
    """An evaluator node: ``value(h)`` on inputs h (..., lags + 1, d); ``source`` its text."""

    source = ""

    def value(self, h):
        raise NotImplementedError

    def children(self):
        return ()


class _Number(_Node):
    def __init__(self, number, source):
        self.number, self.source = float(number), source

    def value(self, h):
        return np.full(h.shape[:-2], self.number)


class _Input(_Node):
    def __init__(self, lag, component, source):
        self.lag, self.component, self.source = lag, component, source

    def value(self, h):
        return h[..., h.shape[-2] - 1 - self.lag, self.component]


class _Apply(_Node):
    def __init__(self, function, arguments, source, reduce=False):
        self.function, self.arguments, self.source, self.reduce = function, arguments, source, reduce

    def value(self, h):
        values = [a.value(h) for a in self.arguments]
        if self.reduce:
            return self.function.reduce(np.broadcast_arrays(*values))
        return self.function(*values)

    def children(self):
        return self.arguments


class _Parser:
    def __init__(self, text, input_dim, window, field):
        self.text, self.input_dim, self.window, self.field = text, input_dim, window, field
        self.lags = 0

    def fail(self, message):
        raise ValueError(f"{self.field}: {message}")

    def segment(self, node):
        return ast.get_source_segment(self.text, node) or type(node).__name__

    def build(self, node, depth=0) -> _Node:
        if depth > MAX_DEPTH:
            self.fail(f"the expression is nested more than {MAX_DEPTH} levels deep")
        source = self.segment(node)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                self.fail(f"constant {source} is not allowed (only numbers)")
            try:
                number = float(node.value)
            except OverflowError:
                number = float("inf")
            if not np.isfinite(number):
                self.fail(f"number {source[:20]}{'...' if len(source) > 20 else ''} is too large")
            return _Number(number, source)
        if isinstance(node, ast.Name):
            return self.variable(node.id, source)
        if isinstance(node, ast.BinOp):
            op = OPERATORS.get(type(node.op))
            if op is None:
                self.fail(f"operator '{OPERATOR_TEXT.get(type(node.op), type(node.op).__name__)}' is not allowed "
                          f"(allowed: + - * / **)")
            return _Apply(op, [self.build(node.left, depth + 1), self.build(node.right, depth + 1)], source)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return _Apply(np.negative, [self.build(node.operand, depth + 1)], source)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand, depth + 1)
            self.fail(f"operator '{OPERATOR_TEXT.get(type(node.op), type(node.op).__name__)}' is not allowed "
                      f"(allowed: + - * / **)")
        if isinstance(node, ast.Call):
            return self.call(node, source, depth)
        if isinstance(node, ast.Attribute):
            self.fail(f"attribute access '.{node.attr}' is not allowed")
        if isinstance(node, ast.Subscript):
            self.fail(f"subscript '{source}' is not allowed")
        if isinstance(node, ast.Compare):
            self.fail(f"comparison '{source}' is not allowed")
        if isinstance(node, ast.BoolOp):
            self.fail(f"'{'and' if isinstance(node.op, ast.And) else 'or'}' is not allowed")
        self.fail(f"'{source}' ({type(node).__name__}) is not allowed")

    def variable(self, name, source) -> _Input:
        match = _VARIABLE.fullmatch(name)
        if match is None:
            if name in FUNCTIONS:
                self.fail(f"function '{name}' must be called, as {name}(...)")
            self.fail(f"unknown name '{name}' ({_VARIABLES})")
        lag, component = int(match.group(1)), match.group(2)
        if component is None:
            if self.input_dim != 1:
                self.fail(f"'{name}' needs a component: the inputs have dimension {self.input_dim} (write "
                          f"{name}_0 ... {name}_{self.input_dim - 1})")
            component = 0
        component = int(component)
        if component >= self.input_dim:
            self.fail(f"component {component} in '{name}' is beyond the input dimension {self.input_dim} "
                      f"(components 0..{self.input_dim - 1})")
        if self.window is not None and lag >= self.window:
            self.fail(f"lag {lag} in '{name}' is beyond the window length {self.window} (lags 0..{self.window - 1})")
        self.lags = max(self.lags, lag)
        return _Input(lag, component, source)

    def call(self, node, source, depth) -> _Apply:
        if not isinstance(node.func, ast.Name):
            self.fail(f"only the functions ({_ALLOWED}) can be called, not '{self.segment(node.func)}'")
        name = node.func.id
        if name not in FUNCTIONS:
            self.fail(f"unknown function '{name}' ({_ALLOWED})")
        if node.keywords:
            self.fail(f"keyword argument '{node.keywords[0].arg or '**'}' in {name}(...) is not allowed")
        if any(isinstance(a, ast.Starred) for a in node.args):
            self.fail(f"starred argument in {name}(...) is not allowed")
        n = len(node.args)
        if name in VARIADIC and n < 2:
            self.fail(f"{name}(...) needs at least two arguments, got {n}")
        if name not in VARIADIC and n != 1:
            self.fail(f"{name}(...) takes one argument, got {n}")
        arguments = [self.build(a, depth + 1) for a in node.args]
        return _Apply(FUNCTIONS[name], arguments, source, reduce=name in VARIADIC)


def _parse(text, input_dim, window, field):
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{field}: must be a non-empty expression of the inputs, got {text!r}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"{field}: the expression is longer than {MAX_LENGTH} characters")
    if "\n" in text or "\r" in text:
        raise ValueError(f"{field}: the expression must be one line")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        where = f" at column {err.offset}" if err.offset else ""
        raise ValueError(f"{field}: not a valid expression: {err.msg}{where}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ValueError(f"{field}: the expression is nested too deeply") from None
    parser = _Parser(text.strip(), input_dim, window, field)
    return parser.build(tree.body), parser.lags


@dataclass(frozen=True)
class Expression:
    """A parsed target: ``expression(h)`` on inputs h (..., lags + 1, d), oldest first, returns (...).

    Only ``text`` and ``input_dim`` define it (it pickles as them and is rebuilt), so it can be sent to worker
    processes and compared."""

    text: str
    input_dim: int
    lags: int = field(default=0, compare=False)

    def __post_init__(self):
        root, lags = _parse(self.text, self.input_dim, None, "target")
        object.__setattr__(self, "lags", lags)
        object.__setattr__(self, "_root", root)

    def __reduce__(self):
        return Expression, (self.text, self.input_dim)

    def _inputs(self, h):
        h = np.asarray(h, dtype=float)
        if h.ndim < 2 or h.shape[-1] != self.input_dim or h.shape[-2] < self.lags + 1:
            raise ValueError(f"inputs must have shape (..., >= {self.lags + 1}, {self.input_dim}), got {h.shape}")
        return h

    def __call__(self, h) -> np.ndarray:
        h = self._inputs(h)
        with np.errstate(all="ignore"):
            return np.array(self._root.value(h), dtype=float)  # a copy, never a view of h

    def check_finite(self, h, field="target"):
        """Raise a one-line ValueError if the target is non-finite on some of the inputs h (..., lags + 1, d),
        naming the smallest sub-expression that turns finite values into a non-finite one there, with the input."""
        h = self._inputs(h)
        h = h.reshape(-1, *h.shape[-2:])
        with np.errstate(all="ignore"):
            bad_output = ~np.isfinite(np.broadcast_to(self._root.value(h), h.shape[:1]))
            if not bad_output.any():
                return
            where = int(np.argmax(bad_output))
            node = _culprit(self._root, h[where:where + 1])
            bad = np.broadcast_to(node.value(h[where:where + 1]), (1,))[0]
        inputs = h[where, h.shape[1] - 1 - self.lags:]
        shown = ", ".join(f"X_k-{self.lags - i}" if self.lags - i else "X_k" for i in range(inputs.shape[0]))
        raise ValueError(f"{field}: '{node.source}' is not finite ({bad}) at inputs ({shown}) = "
                         f"{np.array2string(inputs, separator=', ').replace(chr(10), '')}")


def _culprit(node: _Node, h) -> _Node:
    """Below a node that is non-finite on the one input h (1, L, d), the deepest one whose children are finite."""
    for child in node.children():
        if not np.all(np.isfinite(child.value(h))):
            return _culprit(child, h)
    return node


def parse_expression(text, input_dim, *, window=None, field="target") -> Expression:
    """Parse and check ``text`` for inputs of dimension ``input_dim``; ``window`` (the window length) bounds the
    lags to window - 1. Errors are one-line ValueErrors starting with ``field``."""
    if isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)) or input_dim < 1:
        raise ValueError(f"{field}: input_dim must be a positive integer, got {input_dim!r}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1):
        raise ValueError(f"{field}: window must be a positive integer, got {window!r}")
    _parse(text, int(input_dim), window, field)  # the checks, with the caller's field name and window
    return Expression(text.strip(), int(input_dim))
