"""PUT / PATCH / DELETE of the management list endpoints, applied to a `ConfigDocument`.

Semantics are the reference's (reference/cliproxyapi-surface.md §5.2):

* string list (``api-keys``): PUT a JSON array or ``{"items": [...]}``; PATCH
  ``{"index", "value"}`` or ``{"old", "new"}`` (``new`` is appended when ``old`` is absent);
  DELETE ``?index=`` or ``?value=`` (every equal item);
* object lists (provider keys, ``openai-compatibility``): PUT as above; PATCH
  ``{"index" | "match" | "name", "value": {fields}}`` (an empty ``api-key`` — ``base-url`` for
  openai-compatibility — deletes the entry); DELETE ``?index=``, ``?api-key=[&base-url=]`` or
  ``?name=``; deleting a key that is not there succeeds (idempotent).

Field types are checked here (400 naming the field); values are checked afterwards by
`config.parse_config` on the edited text.  No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cliproxyd.management.config_edit import (
    LIST_KINDS,
    ConfigDocument,
    EditError,
    ObjectListSpec,
    check_type,
)

__all__ = ["delete_items", "patch_items", "put_items"]

Query = Callable[[str], str | None]


def _body_items(body: Any) -> list:
    if isinstance(body, dict) and "items" in body:
        items = body["items"]
        if isinstance(items, list) and not items:
            raise EditError(400, "invalid body: items must not be empty")
    else:
        items = body
    if not isinstance(items, list):
        raise EditError(400, "invalid body: expected a JSON array or {\"items\": [...]}")
    return items


def _object(value: Any, spec: ObjectListSpec, where: str, partial: bool) -> dict:
    check_type(value, dict, where)
    out = {}
    for name, field_value in value.items():
        want = spec.fields.get(name)
        if want is None:
            raise EditError(400, f"invalid body: {where}.{name} is not a known field "
                                 f"(known: {', '.join(spec.fields)})")
        if field_value is None and partial:
            out[name] = None  # PATCH: null removes the field
            continue
        out[name] = check_type(field_value, want, f"{where}.{name}")
    return out


def put_items(doc: ConfigDocument, key: str, body: Any) -> None:
    """Replace the whole list."""
    spec = LIST_KINDS[key]
    items = _body_items(body)
    if spec is None:
        clean = [check_type(v, str, f"{key}[{i}]") for i, v in enumerate(items)]
    else:
        clean = [_object(v, spec, f"{key}[{i}]", partial=False) for i, v in enumerate(items)]
    doc.replace_list(key, clean)


def _index(value: Any, size: int, where: str = "index") -> int:
    check_type(value, int, where)
    if not 0 <= value < size:
        raise EditError(404, "item not found")
    return value


def patch_items(doc: ConfigDocument, key: str, body: Any) -> None:
    """Change one item."""
    check_type(body, dict, "body")
    spec = LIST_KINDS[key]
    if spec is None:
        _patch_strings(doc, key, body)
    else:
        _patch_objects(doc, key, spec, body)


def _patch_strings(doc: ConfigDocument, key: str, body: Mapping) -> None:
    items = doc.items(key)
    if "index" in body and "value" in body:
        doc.set_item(key, _index(body["index"], len(items)), check_type(body["value"], str, "value"))
    elif "old" in body and "new" in body:
        old, new = check_type(body["old"], str, "old"), check_type(body["new"], str, "new")
        if old in items:
            doc.set_item(key, items.index(old), new)
        else:
            doc.append(key, new)
    else:
        raise EditError(400, "missing fields")


def _patch_objects(doc: ConfigDocument, key: str, spec: ObjectListSpec, body: Mapping) -> None:
    items = doc.items(key)
    if "value" not in body:
        raise EditError(400, "missing fields")
    value = _object(body["value"], spec, "value", partial=True)
    if "index" in body:
        index = _index(body["index"], len(items))
    elif "match" in body or spec.match in body:
        wanted = check_type(body.get("match", body.get(spec.match)), str, "match")
        found = [i for i, item in enumerate(items) if _field(item, spec.match) == wanted]
        if not found:
            raise EditError(404, "item not found")
        index = found[0]
    else:
        raise EditError(400, "missing fields")
    if value.get(spec.empty_deletes, None) == "":
        doc.remove_indexes(key, [index])
        return
    item = doc.item(key, index)
    if not isinstance(item, dict):
        raise EditError(400, f"{key}[{index}] in config.yaml is not a mapping")
    for name, field_value in value.items():
        if field_value is None:
            item.pop(name, None)
        else:
            item[name] = field_value


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else None


def delete_items(doc: ConfigDocument, key: str, query: Query) -> None:
    """Remove items named by the query parameters."""
    spec = LIST_KINDS[key]
    items = doc.items(key)
    index = query("index")
    if index is not None:
        if not index.strip().lstrip("-").isdigit():
            raise EditError(400, "invalid body: index must be an integer")
        doc.remove_indexes(key, [_index(int(index), len(items))])
        return
    if spec is None:
        value = query("value")
        if value is None:
            raise EditError(400, "missing index or value")
        doc.remove_indexes(key, [i for i, v in enumerate(items) if v == value])
        return
    doc.remove_indexes(key, _matching(items, spec, query))


def _matching(items: list, spec: ObjectListSpec, query: Query) -> list[int]:
    if spec.match == "name":
        name = query("name")
        if name is None:
            raise EditError(400, "missing index or name")
        return [i for i, item in enumerate(items) if _field(item, "name") == name]
    api_key = query("api-key")
    if api_key is None:
        raise EditError(400, "missing index or api-key")
    hits = [i for i, item in enumerate(items) if _field(item, "api-key") == api_key]
    base = query("base-url")
    if base is not None:
        return [i for i in hits if (_field(items[i], "base-url") or "").rstrip("/") == base.rstrip("/")]
    if len(hits) > 1:
        raise EditError(400, "multiple items match api-key; base-url is required")
    return hits
