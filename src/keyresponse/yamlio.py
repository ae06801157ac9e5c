"""The one YAML reader: safe, size-capped, strict, and with positions.

PyYAML's safe loader accepts anchors/aliases (billion-laughs style blow-ups) and
silently keeps the last of two duplicate keys. We compose the node tree ourselves,
refuse both, and keep each value's position so that validation errors can say
``file:line:column``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyresponse.errors import ConfigError

MAX_BYTES = 1024 * 1024
MAX_INT_DIGITS = 30  # beyond any id, port, count or timeout; Python itself refuses 4,300

Loc = tuple[Any, ...]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Document:
    file: str
    data: Any
    marks: dict[Loc, Mark]

    def mark(self, loc: Loc) -> Mark | None:
        """The position of `loc`, or of its nearest enclosing value."""
        loc = tuple(loc)
        while True:
            if loc in self.marks:
                return self.marks[loc]
            if not loc:
                return None
            loc = loc[:-1]

    def error(self, loc: Loc, message: str, hint: str | None = None) -> ConfigError:
        m = self.mark(loc)
        return ConfigError(
            message,
            file=self.file,
            line=m.line if m else None,
            column=m.column if m else None,
            hint=hint,
        )


def load_file(path: str | Path) -> Document:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_BYTES // 1024} KiB",
            hint="a playbook or inventory this large is almost certainly a mistake",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start})") from None
    return load_text(text, str(path))


def _loader() -> Any:
    """libyaml's safe loader where PyYAML was built with it (the same nodes and marks, several
    times faster: the inventory and playbook are read before the first call to the provider)."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_text(text: str, file: str = "<string>") -> Document:
    import yaml

    loader = _loader()
    marks: dict[Loc, Mark] = {}
    constructor = yaml.SafeLoader(stream="")  # builds scalars only: the tree is walked here
    try:
        node = yaml.compose(text, Loader=loader)
        _refuse_anchors(text, file, loader)
        data = None if node is None else _construct(node, (), marks, file, constructor)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(
            f"invalid YAML: {exc.problem or exc.context}",
            file=file,
            line=line,
            column=mark.column + 1 if mark else None,
            hint=yaml_hint(f"{exc.context or ''} {exc.problem or ''}", text, line),
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    except RecursionError:  # the pure-Python parser, without libyaml's own depth limit
        raise ConfigError("invalid YAML: nested too deeply", file=file,
                          hint="flatten the structure; no playbook or inventory needs this depth") from None
    finally:
        constructor.dispose()
    return Document(file, data, marks)


def _refuse_anchors(text: str, file: str, loader: Any) -> None:
    import yaml

    for event in yaml.parse(text, Loader=loader):
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor:
            m = event.start_mark
            raise ConfigError(
                "YAML anchors and aliases (&name, *name) are not allowed",
                file=file,
                line=m.line + 1 if m else None,
                column=m.column + 1 if m else None,
                hint="write the value out where it is needed",
            )


def _construct(node: Any, loc: Loc, marks: dict[Loc, Mark], file: str, constructor: Any) -> Any:
    import yaml

    marks[loc] = Mark(node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        _standard_tag(node, "tag:yaml.org,2002:map", file)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                m = key_node.start_mark
                raise ConfigError(
                    "YAML merge keys (<<) are not allowed",
                    file=file, line=m.line + 1, column=m.column + 1,
                )
            key = _construct(key_node, loc + ("<key>",), {}, file, constructor)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                m = key_node.start_mark
                raise ConfigError("mapping keys must be plain scalars", file=file,
                                  line=m.line + 1, column=m.column + 1)
            if key in out:
                m = key_node.start_mark
                first = marks.get(loc + (key,))
                raise ConfigError(
                    f"duplicate key {key!r}"
                    + (f" (first defined on line {first.line})" if first else ""),
                    file=file, line=m.line + 1, column=m.column + 1,
                    hint="remove one of them; YAML would silently keep only the last",
                )
            child = loc + (key,)
            marks[child] = Mark(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _construct(value_node, child, marks, file, constructor)
            marks[child] = Mark(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        _standard_tag(node, "tag:yaml.org,2002:seq", file)
        return [_construct(v, loc + (i,), marks, file, constructor) for i, v in enumerate(node.value)]
    if node.tag == "tag:yaml.org,2002:int" and len(node.value.lstrip("+-0_")) > MAX_INT_DIGITS:
        m = node.start_mark
        raise ConfigError(f"number too large ({len(node.value)} digits)", file=file,
                          line=m.line + 1, column=m.column + 1,
                          hint=f"no setting takes a number of more than {MAX_INT_DIGITS} digits; "
                               "quote it if it is meant as text")
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        m = node.start_mark
        raise ConfigError(f"invalid value: {exc.problem}", file=file,
                          line=m.line + 1, column=m.column + 1) from None


def _standard_tag(node: Any, tag: str, file: str) -> None:
    """Collections take only YAML's own tag (`!!python/object:...`, `!include` and the like
    are refused, as the safe constructor refuses them on scalars)."""
    if node.tag != tag:
        m = node.start_mark
        raise ConfigError(f"invalid value: the tag {node.tag!r} is not allowed", file=file,
                          line=m.line + 1, column=m.column + 1,
                          hint="remove the tag: playbooks and inventories are plain YAML")


def scalar_span(text: str, path: Loc) -> tuple[int, int] | None:
    """Where the scalar at `path` (mapping keys from the top) is written in `text`:
    character offsets [start, end), quotes included. None when it is absent or not a
    scalar. For edits that keep every other byte of a file the user wrote."""
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)  # Python's: its marks count characters
    for part in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
    if not isinstance(node, yaml.ScalarNode):
        return None
    return node.start_mark.index, node.end_mark.index


class ValidationProblems(ConfigError):
    """A file with one or more problems, each also kept as fields (file, line, column, message)
    for `validate --json`."""

    def __init__(self, message: str, problems: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.problems = problems


def pydantic_errors(doc: Document, exc: Any, what: str) -> ConfigError:
    """Turn a pydantic ValidationError into one ConfigError listing each problem at its line,
    in our words: a path with 1-based item numbers (`keys.app, target #2`) and what to change."""
    problems: list[dict[str, Any]] = []
    first_mark: Mark | None = None
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic puts union/tag names in loc; keep only those present in the document
        clean = _clean_loc(doc, loc)
        mark = doc.mark(clean)
        first_mark = first_mark or mark
        path = _path_words(clean)
        problems.append({"file": doc.file, "line": mark.line if mark else None,
                         "column": mark.column if mark else None, "path": path,
                         "message": f"{path}: {_message(err, clean, loc)}"})
    def where(p: dict[str, Any]) -> str:
        return f" (line {p['line']}, column {p['column']})" if p["line"] else ""

    lines = [p["message"].replace(": ", where(p) + ": ", 1) for p in problems]
    head = f"invalid {what}: " + lines[0] if len(lines) == 1 else (
        f"invalid {what}, {len(lines)} problems:\n  " + "\n  ".join(lines)
    )
    hint = "`keyresponse schema` prints the JSON Schema; point your editor at it for completion"
    for p in problems:
        p["hint"] = hint
    return ValidationProblems(
        head,
        problems,
        file=doc.file,
        line=first_mark.line if first_mark else None,
        column=first_mark.column if first_mark else None,
        hint=hint,
    )


def _path_words(loc: Loc) -> str:
    """`keys.app.targets.1.path` -> `keys.app, target #2, path` (items counted from 1)."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            parent = str(loc[i - 1]) if i else "item"
            noun = parent[:-1] if parent.endswith("s") else "item"
            if out == parent:
                out = ""
            elif out.endswith("." + parent):
                out = out[: -len(parent) - 1]
            out += (", " if out else "") + f"{noun} #{part + 1}"
        else:
            out += (", " if out and isinstance(loc[i - 1], int) else "." if out else "") + str(part)
    return out or "(document)"


def _message(err: dict[str, Any], clean: Loc, loc: Loc) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    noun = _noun(clean)
    if kind == "extra_forbidden":
        return f"unknown field {clean[-1]!r}" if clean else "unknown field"
    if kind == "missing":
        return f"missing required field {loc[-1]!r}"
    if kind == "union_tag_invalid":
        expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip(" '")]
        tag = str(ctx.get("tag"))
        return (f"unknown {noun} {ctx.get('discriminator', 'kind').strip(chr(39))} {tag!r}"
                f"{_did_you_mean(tag, expected)}; choose one of {', '.join(expected)}")
    if kind == "union_tag_not_found":
        disc = str(ctx.get("discriminator", "kind")).strip("'")
        return f"missing `{disc}`: every {noun} says which {disc} it is"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    msg = str(err["msg"])
    return msg[:1].lower() + msg[1:]


def _noun(loc: Loc) -> str:
    for part in reversed(loc):
        if isinstance(part, str) and not part.isdigit():
            return part[:-1] if part.endswith("s") else part
    return "value"


def _did_you_mean(word: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def yaml_hint(problem: str, text: str, line: int | None) -> str | None:
    """What to change for the YAML syntax errors people make most."""
    source = text.splitlines()[line - 1] if line and 0 < line <= len(text.splitlines()) else ""
    if "\t" in source or ("cannot start any token" in problem and "\t" in text):
        return "a tab character: YAML indents with spaces only; replace the tab with spaces"
    if "expected ',' or '}'" in problem:
        return "a `{` that is not closed: end the mapping with `}` (and separate its entries with `,`)"
    if "expected ',' or ']'" in problem:
        return "a `[` that is not closed: end the list with `]` (and separate its items with `,`)"
    if "mapping values are not allowed" in problem:
        return "a `: ` inside a plain value, or a line indented too far: quote the value or fix the indentation"
    if "could not find expected ':'" in problem:
        return "a line without `key: value` where a mapping was expected: add the `:` or fix the indentation"
    if "expected <block end>" in problem:
        return "indentation that does not line up: indent this line like the ones before it"
    if "found unexpected end of stream" in problem or "while scanning a quoted scalar" in problem:
        return "a quote that is not closed: end the string with the same quote it starts with"
    return None


def _clean_loc(doc: Document, loc: Loc) -> Loc:
    out: list[str | int] = []
    data = doc.data
    for part in loc:
        if (isinstance(data, dict) and part in data) or (isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)):
            out.append(part)
            data = data[part]
        elif isinstance(data, dict) and not isinstance(part, int):
            # a tag name (e.g. union member) or a missing field: keep if it is the last
            if part == loc[-1]:
                out.append(part)
            continue
        else:
            continue
    return tuple(out)
