"""`${{ ... }}` expressions, rendered in Jinja2's immutable sandbox.

The sandbox stops attribute games (``''.__class__.__mro__``) but not resource
exhaustion (``'a' * 10**9``), so this environment also bounds the operands of
``*``/``**``/``+``, the integers passed to any call, the length of every result,
and the wall time of one evaluation.

The wall-time bound cannot stop one long C call (a big-integer power, a gigabyte
``str.replace``): the thread holds the GIL, and it goes on in the background after
the refusal. So every operation that can grow its result far beyond its operands
is sized *before* it runs: integer ``*``/``**`` by the bits of the result,
sequence ``*``/``+`` by the total size of their items, the text filters and methods
that multiply (``join``, ``replace``, ``indent``, ``expandtabs``) by the length they
would produce, and lazy sequences (``map``, ``select``, ``range``...) by what they
have yielded so far.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

from keyresponse.errors import KeyresponseError

EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
WHOLE = re.compile(r"^\s*\$\{\{((?:(?!\}\}).)*)\}\}\s*$", re.S)
MAX_OUTPUT = 64 * 1024
MAX_TOTAL = 1024 * 1024  # characters (or items) in one value, counted through nested sequences
MAX_INT_ARG = 100_000
MAX_INT_BITS = 256  # an integer result larger than this is no id, count or time
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
            if operator == "**":
                if not isinstance(right, (int, float)) or abs(right) > 64:
                    raise SecurityError("exponent too large")
                if _is_int(left) and _is_int(right) and right > 0 and abs(left).bit_length() * right > MAX_INT_BITS:
                    raise SecurityError(f"number too large (more than {MAX_INT_BITS} bits)")
            if operator == "*":
                if _is_int(left) and _is_int(right):
                    if abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
                        raise SecurityError(f"number too large (more than {MAX_INT_BITS} bits)")
                else:
                    seq, n = (left, right) if _is_int(right) else (right, left)
                    if isinstance(seq, (str, list, tuple)) and _is_int(n):
                        limit = MAX_OUTPUT if isinstance(seq, str) else MAX_TOTAL
                        if n > 0 and _size(seq, limit) * n > limit:
                            raise SecurityError("result too large")
            if operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                limit = MAX_OUTPUT if isinstance(left, str) else MAX_TOTAL
                if _size(left, limit) + _size(right, limit) > limit:
                    raise SecurityError("result too large")
            return _checked(super().call_binop(context, operator, left, right), SecurityError)

        def wrap_str_format(self, value: Any) -> Any:
            # a format spec can ask for a gigabyte of padding; playbooks need no str.format
            if getattr(value, "__name__", None) in ("format", "format_map") and isinstance(
                getattr(value, "__self__", None), str
            ):
                def refused(*args: Any, **kwargs: Any) -> str:
                    raise SecurityError("str.format is not available; use ~ to join text")

                return refused
            return None

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            for a in list(args) + list(kwargs.values()):
                if _is_int(a) and abs(a) > MAX_INT_ARG:
                    raise SecurityError(f"number argument {a} too large")
            receiver = getattr(__obj, "__self__", None)
            if isinstance(receiver, str) and getattr(__obj, "__name__", None) in _GROWTH:
                if __obj.__name__ == "join" and args:
                    args = (_bounded_list(args[0], SecurityError), *args[1:])
                if _GROWTH[__obj.__name__](receiver, *args, **kwargs) > MAX_OUTPUT:
                    raise SecurityError(f"str.{__obj.__name__} would produce more than {MAX_OUTPUT} characters")
            return _checked(super().call(__context, __obj, *args, **kwargs), SecurityError)

    env = BoundedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters = {name: _bounded(name, f, SecurityError) for name, f in env.filters.items() if name != "format"}
    range_: Any = env.globals["range"]
    env.globals["range"] = lambda *a: _BoundedIter(iter(range_(*a)), SecurityError)
    _env = env
    return _env


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _size(value: Any, limit: int) -> int:
    """The characters (or items) in `value`, through nested sequences; counting stops past `limit`."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple, dict)):
        total = len(value)
        for item in value.values() if isinstance(value, dict) else value:
            total += _size(item, limit)
            if total > limit:
                break
        return total
    return 1


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(str(value)) if isinstance(value, (int, float)) else 16


def _join_len(sep: Any, items: list[Any]) -> int:
    return len(str(sep)) * max(0, len(items) - 1) + sum(_text_len(i) for i in items)


def _replace_len(s: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(s, str):
        return 0
    old, new = str(old), str(new)
    hits = s.count(old) if old else len(s) + 1
    if _is_int(count) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * max(0, len(new) - len(old))


def _indent_len(s: Any, width: Any = 4, *rest: Any, **kw: Any) -> int:
    pad = len(width) if isinstance(width, str) else width if _is_int(width) else 0
    return _text_len(s) + (str(s).count("\n") + 1) * max(0, pad)


# What a text operation that multiplies its input would produce, computed before it runs
# (a str method's receiver, or a filter's value, comes first).
_GROWTH: dict[str, Any] = {
    "join": lambda sep, items, *a, **k: _join_len(sep, items),
    "replace": _replace_len,
    "expandtabs": lambda s, tabsize=8, *a, **k: len(s) + s.count("\t") * max(0, tabsize if _is_int(tabsize) else 8),
    "indent": _indent_len,
}
_FILTER_GROWTH: dict[str, Any] = {
    "join": lambda items, sep="", *a, **k: _join_len(sep, items),
    "replace": _replace_len,
    "indent": _indent_len,
}


class _BoundedIter:
    """A lazy sequence (`map`, `select`, `range`...) that refuses to yield more than
    MAX_TOTAL characters or items in all: what consumes it (`list`, `join`) stays bounded."""

    def __init__(self, inner: Any, error: type[Exception]) -> None:
        self._inner, self._error, self._total = inner, error, 0

    def __iter__(self) -> _BoundedIter:
        return self

    def __next__(self) -> Any:
        item = next(self._inner)
        self._total += 1 + _size(item, MAX_TOTAL)
        if self._total > MAX_TOTAL:
            raise self._error(f"a sequence grew past {MAX_TOTAL} items or characters")
        return item


def _bounded_list(value: Any, error: type[Exception]) -> Any:
    """A lazy sequence read into a list, bounded; anything else as it is."""
    if isinstance(value, (str, list, tuple, dict)) or not hasattr(value, "__iter__"):
        return value
    return list(_BoundedIter(iter(value), error))


def _checked(value: Any, error: type[Exception]) -> Any:
    """A result, refused when too large; a lazy one wrapped so that it stays bounded."""
    if isinstance(value, str):
        if len(value) > MAX_OUTPUT:
            raise error(f"result too large (more than {MAX_OUTPUT} characters)")
    elif isinstance(value, (list, tuple, dict)):
        if _size(value, MAX_TOTAL) > MAX_TOTAL:
            raise error(f"result too large (more than {MAX_TOTAL} items or characters)")
    elif hasattr(value, "__next__") and not isinstance(value, _BoundedIter):
        return _BoundedIter(value, error)
    return value


def _bounded(name: str, fn: Any, error: type[Exception]) -> Any:
    """Filters are not routed through `call`: bound their integer arguments, size the
    ones that multiply text before they run, and every result after."""
    import functools

    skip = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0  # the context Jinja passes first
    growth = _FILTER_GROWTH.get(name)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for a in list(args[skip + 1:]) + list(kwargs.values()):
            if _is_int(a) and abs(a) > MAX_INT_ARG:
                raise error(f"number argument {a} too large")
        if len(args) > skip:
            args = (*args[:skip], _bounded_list(args[skip], error), *args[skip + 1:])
        if growth is not None and len(args) > skip and growth(*args[skip:], **kwargs) > MAX_OUTPUT:
            raise error(f"`{name}` would produce more than {MAX_OUTPUT} characters")
        return _checked(fn(*args, **kwargs), error)

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
    from jinja2 import TemplateAssertionError, TemplateSyntaxError, meta, nodes

    try:
        tree = _environment().parse("{{" + source + "}}")
        meta.find_undeclared_variables(tree)  # code generation: an unknown filter or test fails only here
    except (TemplateSyntaxError, TemplateAssertionError) as exc:
        raise ExpressionError(f"invalid expression `${{{{ {_shown(source)} }}}}`: {exc.message}") from None
    except ValueError:  # the lexer's int() of a literal with thousands of digits
        raise ExpressionError(f"invalid expression `${{{{ {_shown(source)} }}}}`: a number too large") from None
    for const in tree.find_all(nodes.Const):
        if _is_int(const.value) and abs(const.value).bit_length() > MAX_INT_BITS:
            raise ExpressionError(f"invalid expression `${{{{ {_shown(source)} }}}}`: the number {_shown(str(const.value), 20)} "
                                  f"is too large (more than {MAX_INT_BITS} bits)")


def _shown(source: str, limit: int = 120) -> str:
    """An expression as error messages quote it: a hostile one can be a megabyte long."""
    text = source.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    shown = _shown(source)
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
