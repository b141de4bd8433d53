"""Targets as expressions of the inputs: values against NumPy, refusals with one line, no eval."""

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest

from meanfield import expressions
from meanfield.expressions import parse_expression

RNG = np.random.default_rng(0)
H2 = RNG.normal(size=(11, 3, 2))  # 11 windows of 3 inputs in R^2, oldest first
H1 = RNG.normal(size=(11, 4, 1))

CASES = [
    ("sin(x0_0) * x1_1 + 0.5 * x2_0", H2, lambda h: np.sin(h[:, 2, 0]) * h[:, 1, 1] + 0.5 * h[:, 0, 0], 2),
    ("-x0_1**2 + 2**-1", H2, lambda h: -h[:, 2, 1] ** 2 + 0.5, 0),
    ("min(x0_0, x1_0, 0.1) - max(x0_1, -x2_1)", H2,
     lambda h: np.minimum(np.minimum(h[:, 2, 0], h[:, 1, 0]), 0.1) - np.maximum(h[:, 2, 1], -h[:, 0, 1]), 2),
    ("cos(x0) / (1 + exp(x1)) + tan(x2) - tanh(x3) * sign(x0)", H1,
     lambda h: np.cos(h[:, 3, 0]) / (1 + np.exp(h[:, 2, 0])) + np.tan(h[:, 1, 0]) - np.tanh(h[:, 0, 0])
     * np.sign(h[:, 3, 0]), 3),
    ("sqrt(abs(x1_0)) * log(1 + x0_1 ** 2)", H2, lambda h: np.sqrt(np.abs(h[:, 1, 0])) * np.log(1 + h[:, 2, 1] ** 2),
     1),
    ("x0_0 - x0_0 * 3 / 4 + +2", H2, lambda h: h[:, 2, 0] - h[:, 2, 0] * 3 / 4 + 2, 0),
]


@pytest.mark.parametrize("text, h, reference, lags", CASES)
def test_values_against_numpy(text, h, reference, lags):
    expr = parse_expression(text, h.shape[-1])
    assert expr.lags == lags
    np.testing.assert_allclose(expr(h[:, h.shape[1] - lags - 1:]), reference(h), rtol=1e-15, atol=1e-15)


def test_constants_broadcast_and_pickle():
    assert parse_expression("1.5", 2)(np.zeros((7, 1, 2))).shape == (7,)
    expr = parse_expression("x1_0 * x0_1", 2, window=4)
    again = pickle.loads(pickle.dumps(expr))
    assert again == expr and again.lags == 1
    np.testing.assert_array_equal(again(H2[:, 1:]), expr(H2[:, 1:]))


BAD = [
    ("__import__('os')", "__import__"),
    ("__import__('os').system('ls')", "__import__"),
    ("x0_0.real", ".real"),
    ("y + 1", "'y'"),
    ("pi * x0_0", "'pi'"),
    ("foo(x0_0)", "'foo'"),
    ("x0_0(1)", "x0_0"),
    ("x12_0", "x12_0"),  # window 10
    ("x0_2", "x0_2"),  # dimension 2
    ("x0", "'x0'"),  # bare lag with d = 2
    ("x01_0", "x01_0"),
    ("x0_0 % 2", "'%'"),
    ("x0_0 // 2", "'//'"),
    ("x0_0 if x0_1 else 1", "x0_0 if x0_1 else 1"),
    ("x0_0 < 1", "x0_0 < 1"),
    ("x0_0 and x0_1", "'and'"),
    ("lambda: 1", "lambda"),
    ("[x0_0]", "[x0_0]"),
    ("x0_0[0]", "x0_0[0]"),
    ("'abc'", "'abc'"),
    ("True", "True"),
    ("1j", "1j"),
    ("sin(x0_0, x1_0)", "sin"),
    ("max(x0_0)", "max"),
    ("sin(x=x0_0)", "'x'"),
    ("sin(*x0_0)", "starred"),
    ("sin", "'sin'"),
    ("sin(x0_0", "not a valid expression"),
    ("", "non-empty"),
    ("x0_0\nx0_1", "one line"),
    ("-" * 3000 + "x0_0", "longer than 2000"),
    ("-" * 1500 + "x0_0", "nested"),
    ("(" * 300 + "x0_0" + ")" * 300, "nested"),
    ("1" + "0" * 400 + " * x0_0", "too large"),  # was an OverflowError
    ("1e400 * x0_0", "too large"),
    ("x0_0\x00", "not a valid expression"),
]


@pytest.mark.parametrize("text, token", BAD)
def test_refusals_are_one_line_naming_the_token(text, token):
    with pytest.raises(ValueError) as info:
        parse_expression(text, 2, window=10, field="task.target")
    message = str(info.value)
    assert message.startswith("task.target: ") and "\n" not in message and token in message, message


def test_check_finite_names_the_sub_expression():
    states = np.array([[[1.0]], [[-1.0]], [[0.0]]])
    with pytest.raises(ValueError, match=r"'log\(x0\)' is not finite \(nan\) at inputs \(X_k\) = \[\[-1\.\]\]"):
        parse_expression("2 * log(x0) + 1", 1).check_finite(states[:2])
    with pytest.raises(ValueError, match=r"'1/x0' is not finite \(inf\)"):
        parse_expression("3 + 1/x0", 1).check_finite(states)
    parse_expression("exp(-x0 ** 2)", 1).check_finite(states)
    # a non-finite intermediate with a finite target is fine: only the target's values matter
    parse_expression("tanh(exp(x0))", 1).check_finite(np.array([[[1000.0]]]))
    parse_expression("exp(-1/x0**2)", 1).check_finite(states)


def test_the_value_is_never_a_view_of_the_inputs():
    h = np.ones((3, 1, 1))
    parse_expression("x0", 1)(h)[:] = 5.0
    assert np.all(h == 1.0)


def test_the_module_never_calls_eval_exec_or_compile():
    tree = ast.parse(Path(expressions.__file__).read_text())
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not {"eval", "exec", "compile", "__import__"} & (called | names)


def test_check_finite_names_the_first_bad_input_of_a_batch_with_its_lags_only():
    h = np.ones((2, 2, 3, 1))  # a (2, 2) batch of windows of 3 steps, oldest first
    h[0, 1, :, 0] = [7.0, 3.0, 0.0]  # X_k = 0: the first window bad for 1/x0, with good ones after it
    h[1, 0, :, 0] = [5.0, 0.0, 2.0]  # X_k-1 = 0: the first window bad for 1/x1
    with pytest.raises(ValueError, match=r"'1/x0' is not finite \(inf\) at inputs \(X_k\) = \[\[0\.\]\]$"):
        parse_expression("1/x0", 1).check_finite(h)
    with pytest.raises(ValueError, match=r"'1/x1' is not finite \(inf\) at inputs \(X_k-1, X_k\) = "
                                         r"\[\[0\.\], *\[2\.\]\]$"):
        parse_expression("x0 + 1/x1", 1).check_finite(h)


def test_lags_up_to_the_window_length_minus_one():
    assert parse_expression("x2", 1, window=3).lags == 2
    with pytest.raises(ValueError, match=r"lag 3 in 'x3' is beyond the window length 3"):
        parse_expression("x3", 1, window=3)


def test_nesting_is_allowed_to_the_limit_and_refused_beyond():
    from meanfield.expressions import MAX_DEPTH

    assert parse_expression("+" * MAX_DEPTH + "x0", 1)(np.ones((1, 1, 1))) == 1.0
    assert parse_expression("x0" + " + x0" * MAX_DEPTH, 1)(np.ones((1, 1, 1))) == MAX_DEPTH + 1
    for text in ("+" * (MAX_DEPTH + 1) + "x0", "x0" + " + x0" * (MAX_DEPTH + 1)):
        with pytest.raises(ValueError, match="nested more than"):
            parse_expression(text, 1)
