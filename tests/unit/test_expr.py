"""The expression sandbox refuses escapes and resource exhaustion instead of evaluating them."""

from __future__ import annotations

import pytest

from keyresponse.expr import ExpressionError, render, truthy
from keyresponse.secret import Secret
from tests.conftest import fake_key

CTX = {"inputs": {"n": 3, "who": "ops"}, "steps": {}, "key": {"name": "k"}, "incident": {"id": "i"}}

REFUSED = [
    "''.__class__.__mro__",
    "''.__class__.__mro__[1].__subclasses__()",
    "lipsum.__globals__",
    "cycler.__init__.__globals__.os",
    "inputs.__class__",
    "inputs.update({'x': 1})",
    "'a' * 10**9",
    "'a' * 100000000",
    "[1] * 100000000",
    "10 ** 1000",
    "'a'|center(1000000000)",
    "'{:>1000000000}'.format('a')",
    "range(10**8)|list",
    "'%1000000000s' % 'a'",
    "'%1000000000s'|format('a')",
    "'{0:>1000000000}'.format_map(inputs)",
]


@pytest.mark.parametrize("source", REFUSED)
def test_sandbox_refuses(source: str) -> None:
    with pytest.raises(ExpressionError):
        render("${{ " + source + " }}", CTX)


def test_whole_expression_keeps_native_type() -> None:
    secret = Secret(fake_key())
    ctx = {**CTX, "steps": {"a": {"outputs": {"s": secret, "l": [1, 2]}}}}
    assert render("${{ steps.a.outputs.s }}", ctx) is secret
    assert render("${{ steps.a.outputs.l }}", ctx) == [1, 2]
    assert render("n=${{ inputs.n + 1 }} by ${{ inputs.who }}", ctx) == "n=4 by ops"
    assert render({"a": ["${{ inputs.n }}"]}, ctx) == {"a": [3]}


def test_secret_cannot_be_interpolated_into_text() -> None:
    secret = Secret(fake_key())
    ctx = {**CTX, "steps": {"a": {"outputs": {"s": secret}}}}
    with pytest.raises(ExpressionError, match="passed whole"):
        render("Bearer ${{ steps.a.outputs.s }}", ctx)


def test_undefined_is_an_error_not_empty() -> None:
    with pytest.raises(ExpressionError, match="nope"):
        render("${{ inputs.nope }}", CTX)


def test_conditions() -> None:
    assert truthy("${{ inputs.n > 2 }}", CTX) is True
    assert truthy("inputs.n > 5", CTX) is False


def test_nothing_reads_a_secret_value_through_an_expression() -> None:
    value = fake_key()
    secret = Secret(value)
    ctx = {**CTX, "steps": {"a": {"outputs": {"s": secret}}}}
    for source in ("steps.a.outputs.s.reveal()", "steps.a.outputs.s._value", "steps.a.outputs.s.__reduce__()"):
        with pytest.raises(ExpressionError):
            render("${{ " + source + " }}", ctx)
    assert render("${{ steps.a.outputs.s.masked }}", ctx) == secret.masked
    assert value not in str(render("${{ steps.a.outputs.s|string|reverse }}", ctx))[::-1]
