"""`${{ ... }}` expressions, rendered in Jinja2's immutable sandbox.

The sandbox stops attribute games (``''.__class__.__mro__``) but not resource
exhaustion (``'a' * 10**9``), so this environment also bounds the operands of
``*``/``**``/``+``, the integers passed to any call, the length of every result,
and the wall time of one evaluation.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Iterator

from keyresponse.errors import KeyresponseError

EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
WHOLE = re.compile(r"^\s*\$\{\{((?:(?!\}\}).)*)\}\}\s*$", re.S)
MAX_OUTPUT = 64 * 1024
MAX_INT_ARG = 100_000
TIME_BUDGET = 1.0  # seconds per evaluation


class ExpressionError(KeyresponseError):
    pass


_env: Any = None


def _environment() -> Any:
    global _env
    if _env is not None:
        return _env
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            from keyresponse.journal import LostSecret
            from keyresponse.secret import Secret

            # a secret passes through an expression whole; nothing may read its value
            if isinstance(obj, (Secret, LostSecret)):
                return attr == "masked"
            return bool(super().is_safe_attribute(obj, attr, value))

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "%" and isinstance(left, str):
                raise SecurityError("%-formatting is not available; use ~ to join text")
            if operator == "**" and (not isinstance(right, (int, float)) or abs(right) > 64):
                raise SecurityError("exponent too large")
            if operator == "*":
                seq, n = (left, right) if isinstance(right, int) else (right, left)
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    if len(seq) * n > MAX_OUTPUT:
                        raise SecurityError("result too large")
            if operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                if len(left) + len(right) > MAX_OUTPUT:
                    raise SecurityError("result too large")
            return super().call_binop(context, operator, left, right)

        def wrap_str_format(self, value: Any) -> Any:
            # a format spec can ask for a gigabyte of padding; playbooks need no str.format
            if getattr(value, "__name__", None) in ("format", "format_map") and isinstance(
                getattr(value, "__self__", None), str
            ):
                def refused(*args: Any, **kwargs: Any) -> str:
                    raise SecurityError("str.format is not available; use ~ to join text")

                return refused
            return None

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            for a in list(args) + list(kwargs.values()):
                if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_INT_ARG:
                    raise SecurityError(f"number argument {a} too large")
            return super().call(__context, __obj, *args, **kwargs)

    env = BoundedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters = {name: _bounded(f, SecurityError) for name, f in env.filters.items() if name != "format"}
    _env = env
    return _env


def _bounded(fn: Any, error: type[Exception]) -> Any:
    """Filters are not routed through `call`; bound their integer arguments too."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for a in list(args[1:]) + list(kwargs.values()):
            if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_INT_ARG:
                raise error(f"number argument {a} too large")
        return fn(*args, **kwargs)

    return wrapper


def has_expression(value: Any) -> bool:
    return isinstance(value, str) and "${{" in value


def expressions_in(value: Any) -> Iterator[str]:
    """Every expression source inside a (nested) `with:` value."""
    if isinstance(value, str):
        for m in EXPR.finditer(value):
            yield m.group(1)
    elif isinstance(value, dict):
        for v in value.values():
            yield from expressions_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from expressions_in(v)


def check_syntax(source: str) -> None:
    from jinja2 import TemplateSyntaxError

    try:
        _environment().parse("{{" + source + "}}")
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"invalid expression `${{{{{source.strip()}}}}}`: {exc.message}") from None


def output_reads(source: str) -> dict[str, set[str] | None]:
    """For each step X an expression reads, the names of X's outputs it reads: empty
    when it reads only `steps.X.status`, None when it may read any of them (`steps.X`
    or `steps.X.outputs` whole, or a name computed at run time). The key "*" means a
    step chosen at run time: any step before it."""
    from jinja2 import nodes

    tree = _environment().parse("{{" + source + "}}")
    accesses = list(tree.find_all((nodes.Getattr, nodes.Getitem)))
    called = {id(call.node) for call in tree.find_all(nodes.Call)}  # `outputs.get(...)` is no output name

    def name_of(node: Any) -> str | None:
        if isinstance(node, nodes.Getattr):
            return str(node.attr)
        return node.arg.value if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) else None

    def parent(child: Any) -> Any:
        return next((a for a in accesses if a.node is child), None)

    reads: dict[str, set[str] | None] = {}
    named = {id(a.node) for a in accesses
             if isinstance(a.node, nodes.Name) and a.node.name == "steps" and name_of(a) is not None}
    if any(n.name == "steps" and id(n) not in named for n in tree.find_all(nodes.Name)):
        reads["*"] = None  # `steps[inputs.x]`, `steps | attr(...)`: it may read any step
    for access in accesses:
        if not (isinstance(access.node, nodes.Name) and access.node.name == "steps"):
            continue
        step = name_of(access)
        if step is None:
            continue
        field = parent(access)
        what = name_of(field) if field is not None else None
        if what == "status":
            reads.setdefault(step, set())
            continue
        output = parent(field) if what == "outputs" else None
        name = name_of(output) if output is not None and id(output) not in called else None
        known = reads.setdefault(step, set())
        if name is None or known is None:
            reads[step] = None
        else:
            known.add(name)
    return reads


def names_used(source: str) -> set[str]:
    from jinja2 import meta

    return set(meta.find_undeclared_variables(_environment().parse("{{" + source + "}}")))


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every expression inside `value`. A string that is one whole expression
    keeps the native type of its result (a Secret stays a Secret, a list a list)."""
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if not has_expression(value):
        return value
    whole = WHOLE.match(value)
    if whole:
        return _evaluate(whole.group(1), context)
    return EXPR.sub(lambda m: _to_text(_evaluate(m.group(1), context)), value)


def truthy(value: Any, context: dict[str, Any]) -> bool:
    """`if:` conditions: a whole expression, with or without the `${{ }}`."""
    if isinstance(value, bool):
        return value
    source = value
    whole = WHOLE.match(value)
    if whole:
        source = whole.group(1)
    return bool(_evaluate(source, context))


def _to_text(value: Any) -> str:
    from keyresponse.secret import Secret

    if isinstance(value, Secret):
        # interpolating a secret into a larger string would make a plain str of it
        raise ExpressionError("a secret can only be passed whole (`${{ ... }}` alone), not inside text")
    return "" if value is None else str(value)


def _evaluate(source: str, context: dict[str, Any]) -> Any:
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError

    env = _environment()
    result: list[Any] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            fn = env.compile_expression(source, undefined_to_none=False)
            out = fn(**context)
            if hasattr(out, "_undefined_name") or type(out).__name__ == "StrictUndefined":
                str(out)  # raises UndefinedError with the name
            result.append(out)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(exc)

    worker = threading.Thread(target=work, daemon=True, name="keyresponse-expr")
    worker.start()
    worker.join(TIME_BUDGET)
    shown = source.strip()
    if worker.is_alive():
        raise ExpressionError(f"`${{{{ {shown} }}}}` took longer than {TIME_BUDGET:g}s; refused")
    if error:
        exc = error[0]
        if isinstance(exc, SecurityError):
            raise ExpressionError(f"`${{{{ {shown} }}}}` refused by the sandbox: {exc}") from None
        if isinstance(exc, TemplateError):
            raise ExpressionError(f"`${{{{ {shown} }}}}`: {exc.message}") from None
        raise ExpressionError(f"`${{{{ {shown} }}}}`: {type(exc).__name__}: {exc}") from None
    out = result[0]
    if isinstance(out, str) and len(out) > MAX_OUTPUT:
        raise ExpressionError(f"`${{{{ {shown} }}}}` produced more than {MAX_OUTPUT} characters; refused")
    return out
