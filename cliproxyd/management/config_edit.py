"""Comment-preserving edits of config.yaml for the management API (text in, text out).

Operators keep comments and their own key order in config.yaml; PyYAML drops both, so edits go
through ruamel.yaml's round-trip mode, the maintained library that keeps comments, key order,
quoting and indentation (the indentation is guessed from the file).  `ConfigDocument` loads the
text, applies one operation and dumps it; the caller validates the result with
`config.parse_config` (the same code as start-up) before anything is written.

Hostile input: the text is first composed by `_config_yaml.compose` (safe tags only, size and
alias-expansion limits) so ruamel never sees a document start-up would refuse.  Request bodies
are JSON, so only plain values reach the document.

The list operations follow reference/cliproxyapi-surface.md §5.2: string lists (``api-keys``)
and object lists (provider keys, ``openai-compatibility``) with PUT / PATCH / DELETE.  Request
errors are `EditError` (status 400 or 404, the reference's message).  No I/O, no clock.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from cliproxyd import _config_yaml

__all__ = ["LIST_KINDS", "SCALARS", "ConfigDocument", "EditError", "ObjectListSpec"]


class EditError(Exception):
    """A request the document cannot apply; ``status`` is 400 or 404."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# Scalar settings: URL path → (YAML key path, Python type).
SCALARS: Mapping[str, tuple[tuple[str, ...], type]] = {
    "debug": (("debug",), bool),
    "usage-statistics-enabled": (("usage-statistics-enabled",), bool),
    "request-retry": (("request-retry",), int),
    "ws-auth": (("ws-auth",), bool),
    "force-model-prefix": (("force-model-prefix",), bool),
    "routing/strategy": (("routing", "strategy"), str),
}
STRATEGY_ALIASES = {"round-robin": "round-robin", "roundrobin": "round-robin", "rr": "round-robin",
                    "": "round-robin", "fill-first": "fill-first", "fillfirst": "fill-first",
                    "ff": "fill-first"}


@dataclass(frozen=True)
class ObjectListSpec:
    """An object list: its fields and types, the field PATCH ``match`` compares, the field whose
    emptiness in a PATCH deletes the entry, and the DELETE query parameters."""

    fields: Mapping[str, type]
    match: str
    empty_deletes: str


_PROVIDER = {"api-key": str, "prefix": str, "base-url": str, "proxy-url": str, "priority": int,
             "headers": dict, "models": list, "excluded-models": list}
LIST_KINDS: Mapping[str, ObjectListSpec | None] = {
    "api-keys": None,  # a string list
    "gemini-api-key": ObjectListSpec(_PROVIDER, "api-key", "api-key"),
    "claude-api-key": ObjectListSpec(_PROVIDER, "api-key", "api-key"),
    "codex-api-key": ObjectListSpec(_PROVIDER, "api-key", "api-key"),
    "openai-compatibility": ObjectListSpec(
        {"name": str, "base-url": str, "prefix": str, "priority": int, "headers": dict,
         "api-key-entries": list, "models": list, "excluded-models": list}, "name", "base-url"),
}
_TYPE_NAMES = {bool: "true or false", int: "an integer", str: "a string", dict: "an object",
               list: "a list"}


def check_type(value: Any, want: type, name: str) -> Any:
    """``value`` if it is a JSON value of type ``want`` (bool is not an int), else 400."""
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if not ok:
        raise EditError(400, f"invalid body: {name} must be {_TYPE_NAMES[want]}")
    return value


class ConfigDocument:
    """One config.yaml loaded for round-trip editing."""

    def __init__(self, text: str) -> None:
        try:
            _config_yaml.compose(text)
        except _config_yaml.YAMLProblem as exc:
            raise EditError(400, f"config.yaml on disk is not usable YAML: {exc.message}") from None
        _, indent, seq_offset = load_yaml_guess_indent(text) if text.strip() else (None, 2, 0)
        self._yaml = YAML(typ="rt")
        self._yaml.preserve_quotes = True
        self._yaml.width = 4096  # never fold a long key or URL onto two lines
        self._yaml.indent(mapping=2, sequence=max(indent or 2, (seq_offset or 0) + 2),
                          offset=seq_offset or 0)
        data = self._yaml.load(text) if text.strip() else None
        if data is not None and not isinstance(data, CommentedMap):
            raise EditError(400, "config.yaml on disk is not a mapping of settings")
        self.data = data if data is not None else CommentedMap()

    def dump(self) -> str:
        """The edited document as YAML text."""
        out = io.StringIO()
        self._yaml.dump(self.data, out)
        return out.getvalue()

    # -- scalars ------------------------------------------------------------------------------

    def set_scalar(self, path: tuple[str, ...], value: Any) -> None:
        """Set the value at a key path, creating mappings on the way (``routing.strategy``)."""
        node = self.data
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, CommentedMap):
                child = node[key] = CommentedMap()
            node = child
        node[path[-1]] = value

    # -- lists --------------------------------------------------------------------------------

    def _list(self, key: str) -> CommentedSeq:
        seq = self.data.get(key)
        if not isinstance(seq, CommentedSeq):
            seq = self.data[key] = CommentedSeq()
        return seq

    def replace_list(self, key: str, items: list) -> None:
        """PUT: the whole list (comments after the list stay after it)."""
        seq = self._list(key)
        tail = _detach_tail(seq)
        del seq[:]
        seq.extend(items)
        _attach_tail(seq, tail)

    def append(self, key: str, item: Any) -> None:
        """Add ``item`` at the end of list ``key``."""
        seq = self._list(key)
        tail = _detach_tail(seq)
        seq.append(item)
        _attach_tail(seq, tail)

    def remove_indexes(self, key: str, indexes: list[int]) -> None:
        """Remove the items at ``indexes`` from list ``key``."""
        seq = self._list(key)
        tail = _detach_tail(seq)
        for i in sorted(set(indexes), reverse=True):
            del seq[i]
        _attach_tail(seq, tail)

    def items(self, key: str) -> list:
        """A copy of list ``key`` ([] when absent)."""
        seq = self.data.get(key)
        return list(seq) if isinstance(seq, list) else []

    def item(self, key: str, index: int) -> Any:
        """The live item (edits to it land in the document)."""
        return self._list(key)[index]

    def set_item(self, key: str, index: int, value: Any) -> None:
        """Replace one item of list ``key``."""
        self._list(key)[index] = value


# ---------------------------------------------------------------------------------------------
# Comments that follow a list belong after the list, whatever is appended or removed: ruamel
# hangs them on the last scalar, so they are moved to the new last scalar.

def _tail_slot(node: Any) -> tuple[Any, Any, int] | None:
    """(container, key, position) of the comment slot after the node's last scalar."""
    slot = None
    while isinstance(node, (CommentedSeq, CommentedMap)) and len(node):
        if isinstance(node, CommentedSeq):
            key, pos, child = len(node) - 1, 0, node[-1]
        else:
            key = list(node.keys())[-1]
            pos, child = 2, node[key]
        slot = (node, key, pos)
        node = child
    return slot


def _detach_tail(node: Any) -> str:
    """Remove and return the full-line comments after the node's last scalar ("" if none)."""
    slot = _tail_slot(node)
    if slot is None:
        return ""
    container, key, pos = slot
    entry = container.ca.items.get(key)
    token = entry[pos] if entry and len(entry) > pos else None
    if not isinstance(token, CommentToken) or "\n" not in token.value:
        return ""
    head, _, rest = token.value.partition("\n")
    if not rest:
        return ""
    token.value = head + "\n"
    return rest


def _attach_tail(node: Any, tail: str) -> None:
    slot = _tail_slot(node)
    if not tail or slot is None:
        return
    container, key, pos = slot
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    while len(entry) <= pos:
        entry.append(None)
    token = entry[pos]
    if isinstance(token, CommentToken):
        token.value = token.value.rstrip("\n") + "\n" + tail
    else:
        entry[pos] = CommentToken("\n" + tail, CommentMark(0), None)
