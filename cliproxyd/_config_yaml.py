"""Safe YAML composition for config.yaml: text in, a bounded node tree (with line marks) out.

This module owns the defences against hostile YAML (issue 2, "Bad input"):

* only PyYAML's SafeLoader composer is used, and no Python object is ever constructed from a
  tag: any tag outside plain YAML (``!!python/object``, ``!custom``...) is rejected;
* files above `MAX_BYTES` are refused before parsing;
* anchors and aliases are allowed, but the tree is measured *after* alias expansion and refused
  above `MAX_NODES` ("billion laughs"); a recursive alias and nesting deeper than `MAX_DEPTH` are
  refused too.

It does no I/O: the caller reads the file.  Errors are `YAMLProblem` carrying a 1-based line.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 4 * 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

_Y = "tag:yaml.org,2002:"
NULL, BOOL, INT, FLOAT, STR = _Y + "null", _Y + "bool", _Y + "int", _Y + "float", _Y + "str"
SEQ, MAP, MERGE, TIMESTAMP = _Y + "seq", _Y + "map", _Y + "merge", _Y + "timestamp"
_ALLOWED_TAGS = frozenset({NULL, BOOL, INT, FLOAT, STR, SEQ, MAP, MERGE, TIMESTAMP})

# What a wrong-typed value "is", for messages such as "expected a string, got an integer".
TAG_NAMES = {
    NULL: "null", BOOL: "a boolean", INT: "an integer", FLOAT: "a number", STR: "a string",
    SEQ: "a list", MAP: "a mapping", TIMESTAMP: "a date",
}


@dataclass(frozen=True)
class YAMLProblem(Exception):
    """The text is not acceptable YAML; `line` is 1-based (0 = no position)."""

    line: int
    message: str


def line_of(node: Node) -> int:
    """1-based line where `node` starts."""
    return node.start_mark.line + 1


def compose(text: str) -> Node | None:
    """Compose `text` into a node tree, or None for an empty document; raise `YAMLProblem`."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YAMLProblem(0, f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise YAMLProblem(line, f"invalid YAML: character {_codepoint(exc.character)} is not allowed") from None
    except yaml.MarkedYAMLError as exc:
        raise YAMLProblem(*_describe_marked(exc)) from None
    except yaml.YAMLError as exc:
        raise YAMLProblem(0, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YAMLProblem(0, f"YAML is nested too deeply (limit {MAX_DEPTH} levels)") from None
    if root is not None:
        _check_tree(root)
    return root


def _codepoint(character: int | str) -> str:
    code = character if isinstance(character, int) else ord(character)
    return f"U+{code:04X}"


def _describe_marked(exc: yaml.MarkedYAMLError) -> tuple[int, str]:
    """(line, message) of a PyYAML syntax error: the problem and its column."""
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        if exc.problem.startswith("but "):
            what = f"{exc.context}, {exc.problem}"
        else:
            started = f" started on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            what = f"{exc.problem} ({exc.context}{started})"
    if mark is None:
        return 0, f"invalid YAML: {what}"
    return mark.line + 1, f"invalid YAML at column {mark.column + 1}: {what}"


def _check_tree(root: Node) -> None:
    """Reject unknown tags, recursion, excessive depth and excessive size after alias expansion."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise YAMLProblem(line_of(node), "recursive YAML alias")
        if depth > MAX_DEPTH:
            raise YAMLProblem(line_of(node), f"YAML is nested too deeply (limit {MAX_DEPTH} levels)")
        if node.tag not in _ALLOWED_TAGS:
            raise YAMLProblem(line_of(node), f"unsupported YAML tag {node.tag!r} (only plain YAML is accepted)")
        visiting.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        visiting.discard(key)
        if total > MAX_NODES:
            raise YAMLProblem(
                line_of(node), f"YAML expands to more than {MAX_NODES} nodes (aliases included)")
        sizes[key] = total
        return total

    size(root, 0)


def scalar_value(node: ScalarNode) -> object:
    """The Python value of a plain scalar (str, int, float, bool, None or a date); raises ValueError."""
    loader = yaml.SafeLoader("")
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None
    finally:
        loader.dispose()
    return value
