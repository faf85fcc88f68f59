"""JSON Schema ↔ Gemini ``Schema`` conversion for function declarations (issue 3 point 5).

Gemini's ``FunctionDeclaration.parameters`` takes Google's ``Schema`` object, "a select subset of
an OpenAPI 3.0 schema object" (ai.google.dev/api/caching#Schema): ``type`` (an enum name:
STRING, NUMBER, INTEGER, BOOLEAN, ARRAY, OBJECT), ``format``, ``title``, ``description``,
``nullable``, ``enum`` (strings), ``properties``, ``required``, ``propertyOrdering``, ``items``,
``anyOf``, ``minItems``/``maxItems``, ``minProperties``/``maxProperties``,
``minLength``/``maxLength``, ``minimum``/``maximum``.  Unknown keys (``additionalProperties``,
``$ref``, ``$defs``, ``const``, ``oneOf``, ...) make the API answer 400, so:

* `clean` turns any JSON Schema a client may send (OpenAI, Anthropic, MCP tools) into that
  subset: local ``$ref`` resolved (cycles replaced by a plain OBJECT), ``allOf`` merged, ``const``
  → ``enum``, ``type: [x, "null"]`` / ``anyOf``/``oneOf`` with a null branch → ``nullable``, enum
  values stringified (Gemini enums are STRING), ``format`` values Gemini rejects removed,
  ``pattern`` moved into the description (Gemini's regex engine rejects some JSON Schema
  patterns), every other keyword dropped.  It is applied once, by the Gemini encoder, to each
  tool's parameters.  CLIProxyAPI's cleaner (reference §4.5) flattens ``$ref`` to a bare object and
  ``anyOf`` to one branch; we inline definitions and keep ``anyOf``, which Gemini supports.
  Results are cached by the schema's JSON text: a coding agent sends the same tools with every
  request, and cleaning them was most of the cost of encoding its requests for Gemini.
* `to_json_schema` turns a Gemini ``Schema`` back into ordinary JSON Schema (lower-case types,
  ``nullable`` → ``[type, "null"]``) so that tools decoded from a Gemini client are valid for the
  other formats.  ``clean(to_json_schema(s)) == s`` for the subset `clean` produces.

Pure functions; no I/O.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from cliproxyd import jsontext
from cliproxyd.formats.ir import MAPPING

__all__ = ["clean", "to_json_schema"]

_TYPES = {"string", "number", "integer", "boolean", "array", "object"}

# Keys copied through unchanged once a node is otherwise cleaned.
_PLAIN_KEYS = ("title", "description", "minItems", "maxItems", "minProperties",
               "maxProperties", "minLength", "maxLength", "minimum", "maximum")

# Formats the Gemini API accepts per type (Schema.format docs); others are rejected.
_FORMATS = {"STRING": {"enum", "date-time"}, "NUMBER": {"float", "double"},
            "INTEGER": {"int32", "int64"}}

_MAX_DEPTH = 64


def clean(schema: Any) -> dict[str, Any]:
    """A Gemini-acceptable ``Schema`` for the JSON Schema ``schema`` (never raises).  The caller
    owns the result: a cached one is handed out as a new copy."""
    if not isinstance(schema, MAPPING):
        return {}
    try:
        key = jsontext.dumps_bytes(schema)
    except (TypeError, ValueError):  # not plain JSON values (the IR's own frozen mappings)
        return _clean(schema)
    if len(key) > _CACHED_SIZE:
        return _clean(schema)
    return jsontext.loads(_clean_text(key))


# What the cache may hold: 512 schemas (an agent's tools, with room for several agents) of up to
# 16 KiB of JSON each.
_CACHED_SIZE = 16 * 1024


@functools.lru_cache(maxsize=512)
def _clean_text(schema: bytes) -> bytes:
    """`_clean` from JSON text to JSON text (hashable, so cacheable, and copied by parsing)."""
    return jsontext.dumps_bytes(_clean(jsontext.loads(schema)))


def _clean(schema: Mapping[str, Any]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        if isinstance(schema.get(key), MAPPING):
            defs.update(schema[key])
    return _Cleaner(schema, defs).node(schema, (), 0)


class _Cleaner:
    """One `clean` call: the root (for ``#`` refs) and the definitions table."""

    def __init__(self, root: Mapping[str, Any], defs: Mapping[str, Any]) -> None:
        self.root = root
        self.defs = defs

    def node(self, raw: Any, refs: tuple[str, ...], depth: int) -> dict[str, Any]:
        if raw is True or not isinstance(raw, MAPPING):
            return {"type": "STRING"}  # "anything": a string is what the model can always give
        if depth > _MAX_DEPTH:
            return {"type": "OBJECT"}
        raw = dict(raw)
        if isinstance(raw.get("$ref"), str):
            return self._ref(raw, refs, depth)
        if isinstance(raw.get("allOf"), list):
            raw = self._merge_all_of(raw, refs)
        out: dict[str, Any] = {}
        nullable = raw.get("nullable") is True
        nullable |= self._type(raw, out)
        nullable |= self._any_of(raw, out, refs, depth)
        nullable |= self._enum(raw, out)
        self._children(raw, out, refs, depth)
        self._plain(raw, out)
        if "type" not in out and "anyOf" not in out:
            out["type"] = _implied_type(out)
        self._format(raw, out)
        if nullable:
            out["nullable"] = True
        return out

    # -- references and composition ------------------------------------------------------------

    def _ref(self, raw: dict[str, Any], refs: tuple[str, ...], depth: int) -> dict[str, Any]:
        ref = raw.pop("$ref")
        target = self._lookup(ref)
        if target is None or ref in refs:
            # Unresolvable or recursive: Gemini has no references, so stop with a plain object.
            out = {"type": "OBJECT"}
            desc = raw.get("description") or (target or {}).get("description")
            if isinstance(desc, str):
                out["description"] = desc
            return out
        merged = {**target, **{k: v for k, v in raw.items() if k not in ("$defs", "definitions")}}
        return self.node(merged, refs + (ref,), depth + 1)

    def _lookup(self, ref: str) -> Mapping[str, Any] | None:
        if ref == "#":
            return self.root
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix):
                found = self.defs.get(ref[len(prefix):].replace("~1", "/").replace("~0", "~"))
                return found if isinstance(found, MAPPING) else None
        return None

    def _merge_all_of(self, raw: dict[str, Any], refs: tuple[str, ...]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        props: dict[str, Any] = {}
        required: list[str] = []
        for member in raw.pop("allOf"):
            if isinstance(member, MAPPING) and isinstance(member.get("$ref"), str):
                target = self._lookup(member["$ref"])
                if member["$ref"] in refs or target is None:
                    continue
                member = {**target, **{k: v for k, v in member.items() if k != "$ref"}}
            if not isinstance(member, MAPPING):
                continue
            for key, value in member.items():
                if key == "properties" and isinstance(value, MAPPING):
                    for name, sub in value.items():
                        props.setdefault(name, sub)
                elif key == "required" and isinstance(value, list):
                    required += [n for n in value if n not in required]
                else:
                    merged.setdefault(key, value)
        if isinstance(raw.get("properties"), MAPPING):
            props.update(raw["properties"])
        if isinstance(raw.get("required"), list):
            required += [n for n in raw["required"] if n not in required]
        merged.update({k: v for k, v in raw.items() if k not in ("properties", "required")})
        if props:
            merged["properties"] = props
        if required:
            merged["required"] = required
        return merged

    # -- keyword groups (each returns whether the node turned out nullable) ---------------------

    def _type(self, raw: Mapping[str, Any], out: dict[str, Any]) -> bool:
        kind = raw.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
        names = [k.lower() for k in kinds if isinstance(k, str)]
        real = [k for k in names if k in _TYPES]
        if len(real) == 1:
            out["type"] = real[0].upper()
        elif len(real) > 1:
            out["anyOf"] = [{"type": k.upper()} for k in real]
        return "null" in names

    def _any_of(self, raw: Mapping[str, Any], out: dict[str, Any], refs: tuple[str, ...],
                depth: int) -> bool:
        branches = raw.get("anyOf") if isinstance(raw.get("anyOf"), list) else raw.get("oneOf")
        if not isinstance(branches, list):
            return False
        nullable = False
        kept: list[dict[str, Any]] = []
        for branch in branches:
            if isinstance(branch, MAPPING) and _is_null(branch):
                nullable = True
                continue
            cleaned = self.node(branch, refs, depth + 1)
            nullable |= cleaned.pop("nullable", False)
            kept.append(cleaned)
        if len(kept) == 1:
            for key, value in kept[0].items():
                out.setdefault(key, value)  # the node's own description etc. win
        elif kept:
            out.pop("type", None)
            out["anyOf"] = kept
        return nullable

    def _enum(self, raw: Mapping[str, Any], out: dict[str, Any]) -> bool:
        values = raw.get("enum")
        if not isinstance(values, list) and "const" in raw:
            values = [raw["const"]]
        if not isinstance(values, list):
            return False
        strings = [v if isinstance(v, str) else json.dumps(v) for v in values if v is not None]
        if strings:
            out["type"] = "STRING"  # Gemini enums are STRING values only
            out["enum"] = strings
            out.pop("anyOf", None)
        return len(strings) < len(values)

    def _children(self, raw: Mapping[str, Any], out: dict[str, Any], refs: tuple[str, ...],
                  depth: int) -> None:
        props = raw.get("properties")
        if isinstance(props, MAPPING) and props:
            out["properties"] = {str(name): self.node(sub, refs, depth + 1)
                                 for name, sub in props.items()}
            required = raw.get("required")
            if isinstance(required, list):
                names = [n for n in required if isinstance(n, str) and n in out["properties"]]
                if names:
                    out["required"] = list(dict.fromkeys(names))
            order = raw.get("propertyOrdering")
            if isinstance(order, list) and all(n in out["properties"] for n in order):
                out["propertyOrdering"] = list(order)
        items = raw.get("items")
        if isinstance(items, list):  # tuple validation: Gemini has one item schema
            items = items[0] if items else None
        if items is None and isinstance(raw.get("prefixItems"), list) and raw["prefixItems"]:
            items = raw["prefixItems"][0]
        if items is not None:
            out["items"] = self.node(items, refs, depth + 1)

    @staticmethod
    def _plain(raw: Mapping[str, Any], out: dict[str, Any]) -> None:
        for key in _PLAIN_KEYS:
            value = raw.get(key)
            if key in ("title", "description"):
                if isinstance(value, str):
                    out[key] = value
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = value
        pattern = raw.get("pattern")
        if isinstance(pattern, str):
            hint = f"(pattern: {pattern})"
            out["description"] = f"{out['description']} {hint}" if out.get("description") else hint

    @staticmethod
    def _format(raw: Mapping[str, Any], out: dict[str, Any]) -> None:
        fmt = raw.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
            if fmt != "enum" or "enum" in out:
                out["format"] = fmt


def _is_null(branch: Mapping[str, Any]) -> bool:
    kind = branch.get("type")
    return (kind == "null" or kind == ["null"]) and "enum" not in branch


def _implied_type(out: Mapping[str, Any]) -> str:
    if "properties" in out:
        return "OBJECT"
    if "items" in out:
        return "ARRAY"
    return "STRING"


def to_json_schema(schema: Any) -> Any:
    """Ordinary JSON Schema for a Gemini ``Schema`` (upper-case types, ``nullable``)."""
    if isinstance(schema, list):
        return [to_json_schema(item) for item in schema]
    if not isinstance(schema, MAPPING):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, MAPPING):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = to_json_schema(value)
        elif key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key in ("minItems", "maxItems", "minLength", "maxLength", "minProperties",
                     "maxProperties") and isinstance(value, str) and value.isdigit():
            out[key] = int(value)  # int64 fields arrive as JSON strings
        elif key != "nullable":
            out[key] = value
    if schema.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    return out
