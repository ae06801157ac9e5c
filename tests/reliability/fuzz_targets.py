"""Fuzz targets, run in a child process of their own by test_fuzz.py (so a memory
ceiling, RLIMIT_AS, can be set without touching the test run):

    python -m tests.reliability.fuzz_targets TARGET EXAMPLES BASE_DIR

Each target feeds Hypothesis-made input to one of the project's parsers: the only
exceptions allowed out are the project's own (KeyresponseError and the few documented
ones), each example within a deadline. Exit 0: all passed; else the falsifying
example and its traceback are on stderr."""

from __future__ import annotations

import json
import resource
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keyresponse.errors import KeyresponseError

MEMORY_CEILING = 3 << 30  # bytes of address space (threads reserve stacks: generous, yet bounded)
DEADLINE_MS = 5000  # per example: a hang, not a timing check (the expression budget is 1 s)


def mutated(base: str) -> st.SearchStrategy[str]:
    """`base` with slices replaced, deleted, duplicated or spliced with odd text."""
    odd = st.sampled_from(["", "\x00", "\ufeff", "&a ", "*a", "<<: *a", "!!python/object:os.system", "{", "[",
                           "]", "}", ":", "- ", "\t", "\r", "\r\n", "'", '"', "${{", "}}", "\\", "\u2028",
                           "9" * 400, "null", "~", "..", "/", "%", "---\n", "...\n", "? ", "|", ">", "#"])
    piece = st.one_of(odd, st.text(max_size=40))

    @st.composite
    def build(draw: st.DrawFn) -> str:
        text = base
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, len(text)))
            j = draw(st.integers(i, min(len(text), i + draw(st.integers(0, 80)))))
            op = draw(st.sampled_from(["replace", "delete", "duplicate", "insert"]))
            if op == "replace":
                text = text[:i] + draw(piece) + text[j:]
            elif op == "delete":
                text = text[:i] + text[j:]
            elif op == "duplicate":
                text = text[:j] + text[i:j] * draw(st.integers(2, 4)) + text[j:]
            else:
                text = text[:i] + draw(piece) + text[i:]
        return text

    return build()


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=5),
                    max_leaves=30)


def _write(folder: Path, name: str, text: str | bytes) -> Path:
    p = folder / name
    p.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    return p


def inventory(base: Path, examples: int) -> Callable[[], None]:
    from keyresponse.inventory import load_inventory

    text = (base / "keyresponse.yaml").read_text()
    folder = Path(tempfile.mkdtemp(dir=base))

    @settings(max_examples=examples, deadline=DEADLINE_MS, suppress_health_check=list(HealthCheck), database=None)
    @given(st.one_of(mutated(text), st.text(max_size=300)))
    def check(candidate: str) -> None:
        try:
            load_inventory(_write(folder, "keyresponse.yaml", candidate))
        except KeyresponseError:
            pass

    return check


def playbook(base: Path, examples: int) -> Callable[[], None]:
    from keyresponse.playbook import load_playbook

    repo = Path(__file__).resolve().parents[2]
    texts = [(repo / "playbooks" / name).read_text() for name in ("leaked-key.yaml", "rotate.yaml", "hello.yaml")]
    folder = Path(tempfile.mkdtemp(dir=base))

    @settings(max_examples=examples, deadline=DEADLINE_MS, suppress_health_check=list(HealthCheck), database=None)
    @given(st.one_of(*(mutated(t) for t in texts), st.text(max_size=300)))
    def check(candidate: str) -> None:
        try:
            load_playbook(_write(folder, "book.yaml", candidate))
        except KeyresponseError:
            pass

    return check


def envfile(base: Path, examples: int) -> Callable[[], None]:
    from keyresponse.targets.dotenv import EnvParseError, edit, parse

    sample = "# app\nexport OPENAI_API_KEY='old'\nOTHER=\"a b\" # note\r\nEMPTY=\nQUOTED=\"x\\\"y\"\n"
    names = st.sampled_from(["OPENAI_API_KEY", "OTHER", "EMPTY", "QUOTED", "NEW_ONE"])
    values = st.text(st.characters(blacklist_categories=["Cs"]), max_size=60)

    @settings(max_examples=examples, deadline=DEADLINE_MS, suppress_health_check=list(HealthCheck), database=None)
    @given(st.one_of(mutated(sample), st.text(max_size=200)), st.dictionaries(names, values, min_size=1, max_size=3),
           st.booleans())
    def check(text: str, wanted: dict[str, str], create: bool) -> None:
        try:
            new, _ = edit(text, wanted, create=create)
        except (EnvParseError, KeyError):  # a file that does not parse; a missing name with create=False
            return
        got = {b.name: b.value for b in parse(new)}
        for name, value in wanted.items():  # what was written reads back as it was given
            assert got.get(name) == value, (name, value, got.get(name))

    return check


def alerts(base: Path, examples: int) -> Callable[[], None]:
    from keyresponse.alerts import load

    repo = Path(__file__).resolve().parents[2]
    fixtures = sorted(p for p in (repo / "tests" / "fixtures" / "alerts").iterdir() if p.suffix in (".json", ".jsonl",
                                                                                                    ".jsonc"))
    texts = [p.read_text() for p in fixtures]
    folder = Path(tempfile.mkdtemp(dir=base))

    @st.composite
    def reshaped(draw: st.DrawFn) -> tuple[str, str]:
        """A published payload with one subtree swapped for something else."""
        i = draw(st.integers(0, len(fixtures) - 1))
        text = texts[i]
        try:
            data: Any = json.loads(text)
        except ValueError:  # JSON Lines or JSON with comments: mutate as text
            return fixtures[i].name, draw(mutated(text))
        node, path = data, []
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
            path.append(key)
            node = node[key]
        replacement = draw(JSON)
        if not path:
            return fixtures[i].name, json.dumps(replacement)
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = replacement
        return fixtures[i].name, json.dumps(data)

    @settings(max_examples=examples, deadline=DEADLINE_MS, suppress_health_check=list(HealthCheck), database=None)
    @given(st.one_of(reshaped(), st.tuples(st.sampled_from([p.name for p in fixtures]),
                                           st.sampled_from(texts).flatmap(mutated))))
    def check(candidate: tuple[str, str]) -> None:
        name, text = candidate
        try:
            load(_write(folder, name, text))
        except KeyresponseError:
            pass

    return check


def expressions(base: Path, examples: int) -> Callable[[], None]:
    from keyresponse.expr import check_syntax, names_used, output_reads, render, truthy
    from keyresponse.secret import Secret

    tokens = st.sampled_from([
        "inputs", "steps", "key", "incident", ".", "[", "]", "(", ")", "'a'", "\"b\"", "1", "0", "-1", "10**9", "9" * 30,
        "*", "**", "+", "-", "/", "//", "%", "~", "|", "upper", "join", "replace", "indent", "range", "map", "list",
        "select", "length", "string", "format", "attr", "__class__", "__mro__", "mro", "outputs", "secret", "status",
        " ", ",", ":", "==", "!=", "and", "or", "not", "if", "else", "in", "is", "defined", "lipsum", "cycler",
        "namespace", "{", "}", "{{", "}}", "{%", "%}", "x", "'%s'", "expandtabs", "center", "wordwrap", "sum",
        "batch", "slice", "dictsort", "tojson", "safe", "e", "loop", "self", "True", "None",
    ])
    source = st.lists(tokens, max_size=14).map("".join)
    context = {
        "inputs": {"key": "chatbot-prod", "n": 3, "leaked": Secret("sk-" + "x" * 30)},
        "steps": {"issue": {"outputs": {"secret": Secret("sk-" + "y" * 30), "key_id": "key_1"}, "status": "ok"}},
        "key": {"name": "chatbot-prod", "targets": [1, 2]},
        "incident": {"id": "2026-01-01T0000Z-abcd"},
    }

    @settings(max_examples=examples, deadline=DEADLINE_MS, suppress_health_check=list(HealthCheck), database=None)
    @given(source, st.sampled_from(["whole", "text", "if"]))
    @example("inputs|inputs", "whole")  # found here: an unknown filter passed check_syntax, then crashed the loader
    def check(src: str, how: str) -> None:
        try:
            check_syntax(src)
        except KeyresponseError:
            pass
        else:  # the loader analyses only what check_syntax passed
            names_used(src)
            output_reads(src)
        try:
            if how == "whole":
                render("${{ " + src + " }}", context)
            elif how == "text":
                render("a ${{ " + src + " }} b", context)
            else:
                truthy(src, context)
        except KeyresponseError:
            pass

    return check


TARGETS = {"inventory": inventory, "playbook": playbook, "envfile": envfile, "alerts": alerts,
           "expressions": expressions}


def main() -> int:
    target, examples, base = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CEILING, MEMORY_CEILING))
    TARGETS[target](base, examples)()
    print(f"{target}: {examples} examples, no crash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
