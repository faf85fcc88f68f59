"""Tests of cliproxyd/formats/gemini_schema.py: JSON Schema → Gemini Schema cleaning (issue 3
point 5) and the way back."""

from __future__ import annotations

import json

import pytest
from google.genai import types
from hypothesis import given, settings
from hypothesis import strategies as st

from cliproxyd.formats.gemini_schema import clean, to_json_schema

# The fields of Gemini's Schema object (ai.google.dev/api/caching#Schema) that `clean` may emit.
GEMINI_KEYS = {"type", "format", "title", "description", "nullable", "enum", "properties",
               "required", "propertyOrdering", "items", "anyOf", "minItems", "maxItems",
               "minProperties", "maxProperties", "minLength", "maxLength", "minimum", "maximum"}
GEMINI_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}


def assert_gemini_valid(schema: dict) -> None:
    """Only Gemini's keys and type names, recursively; and the SDK's Schema model accepts it."""
    def walk(node):
        assert isinstance(node, dict)
        assert set(node) <= GEMINI_KEYS, set(node) - GEMINI_KEYS
        if "type" in node:
            assert node["type"] in GEMINI_TYPES
        if "enum" in node:
            assert all(isinstance(v, str) for v in node["enum"]) and node["type"] == "STRING"
        for sub in node.get("properties", {}).values():
            walk(sub)
        if "items" in node:
            walk(node["items"])
        for sub in node.get("anyOf", ()):
            walk(sub)
        for name in node.get("required", ()):
            assert name in node["properties"]
    walk(schema)
    types.Schema.model_validate(schema)


def test_openai_style_schema_loses_only_rejected_keywords():
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object", "additionalProperties": False, "title": "Args",
        "properties": {
            "city": {"type": "string", "description": "City", "minLength": 1,
                     "examples": ["Paris"], "default": "Paris"},
            "days": {"type": "integer", "minimum": 1, "maximum": 14, "exclusiveMaximum": 15},
            "units": {"type": "string", "enum": ["c", "f"]},
        },
        "required": ["city", "days"],
    }
    assert clean(schema) == {
        "type": "OBJECT", "title": "Args",
        "properties": {
            "city": {"type": "STRING", "description": "City", "minLength": 1},
            "days": {"type": "INTEGER", "minimum": 1, "maximum": 14},
            "units": {"type": "STRING", "enum": ["c", "f"]},
        },
        "required": ["city", "days"],
    }


def test_refs_are_inlined_and_cycles_stopped():
    schema = {
        "type": "object",
        "$defs": {"Node": {"type": "object", "description": "A tree node", "properties": {
            "value": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "definitions": {"Color": {"enum": ["red", "green"]}},
        "properties": {"root": {"$ref": "#/$defs/Node"},
                       "color": {"$ref": "#/definitions/Color", "description": "Pick one"},
                       "missing": {"$ref": "#/$defs/Nope"}},
    }
    out = clean(schema)
    root = out["properties"]["root"]
    assert root["description"] == "A tree node"
    assert root["properties"]["value"] == {"type": "STRING"}
    assert root["properties"]["children"]["items"] == {"type": "OBJECT",
                                                       "description": "A tree node"}
    assert out["properties"]["color"] == {"type": "STRING", "enum": ["red", "green"],
                                          "description": "Pick one"}
    assert out["properties"]["missing"] == {"type": "OBJECT"}
    assert_gemini_valid(out)


def test_root_self_reference():
    schema = {"type": "object", "properties": {"next": {"$ref": "#"}, "v": {"type": "number"}}}
    out = clean(schema)
    assert out["properties"]["next"]["properties"]["next"] == {"type": "OBJECT"}
    assert_gemini_valid(out)


@pytest.mark.parametrize("source,expected", [
    ({"const": "fixed"}, {"type": "STRING", "enum": ["fixed"]}),
    ({"type": "integer", "enum": [1, 2, 3]}, {"type": "STRING", "enum": ["1", "2", "3"]}),
    ({"enum": [True, "x", None]}, {"type": "STRING", "enum": ["true", "x"], "nullable": True}),
    ({"type": ["string", "null"]}, {"type": "STRING", "nullable": True}),
    ({"type": ["null", "integer"], "description": "n"},
     {"type": "INTEGER", "description": "n", "nullable": True}),
    ({"type": ["string", "number"]}, {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]}),
    ({"anyOf": [{"type": "string"}, {"type": "null"}], "description": "maybe"},
     {"type": "STRING", "description": "maybe", "nullable": True}),
    ({"oneOf": [{"type": "string"}, {"type": "integer"}]},
     {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
     {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}], "nullable": True}),
    ({"type": "string", "format": "email"}, {"type": "STRING"}),
    ({"type": "string", "format": "date-time"}, {"type": "STRING", "format": "date-time"}),
    ({"type": "number", "format": "double"}, {"type": "NUMBER", "format": "double"}),
    ({"type": "integer", "format": "int64"}, {"type": "INTEGER", "format": "int64"}),
    ({"type": "integer", "format": "uint8"}, {"type": "INTEGER"}),
    ({"type": "string", "pattern": "^[a-z]+$", "description": "slug"},
     {"type": "STRING", "description": "slug (pattern: ^[a-z]+$)"}),
    ({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
     {"type": "ARRAY", "items": {"type": "STRING"}}),
    ({"type": "array", "prefixItems": [{"type": "boolean"}]},
     {"type": "ARRAY", "items": {"type": "BOOLEAN"}}),
    ({"properties": {"a": {"type": "string"}}}, {"type": "OBJECT", "properties": {
        "a": {"type": "STRING"}}}),
    ({}, {"type": "STRING"}),
    ({"type": "object", "additionalProperties": {"type": "string"}}, {"type": "OBJECT"}),
    ({"type": "string", "x-google-extension": 1, "$comment": "c", "deprecated": True,
      "readOnly": True}, {"type": "STRING"}),
])
def test_keyword_conversions(source, expected):
    out = clean(source)
    assert out == expected
    assert_gemini_valid(out)


def test_all_of_merges_members():
    schema = {"allOf": [
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        {"$ref": "#/$defs/B"},
        {"properties": {"a": {"type": "integer"}}}],
        "$defs": {"B": {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}},
        "description": "merged"}
    out = clean(schema)
    assert out == {"type": "OBJECT", "description": "merged",
                   "properties": {"a": {"type": "STRING"}, "b": {"type": "BOOLEAN"}},
                   "required": ["a", "b"]}


def test_required_pruned_and_property_names_that_look_like_keywords_kept():
    schema = {"type": "object", "properties": {
        "type": {"type": "string"}, "$ref": {"type": "string"}, "properties": {"type": "integer"},
        "additionalProperties": {"type": "boolean"}},
        "required": ["type", "ghost", "$ref", "type"]}
    out = clean(schema)
    assert set(out["properties"]) == {"type", "$ref", "properties", "additionalProperties"}
    assert out["properties"]["properties"] == {"type": "INTEGER"}
    assert out["required"] == ["type", "$ref"]


def test_garbage_never_raises():
    for junk in (None, 3, "x", [], {"type": 5}, {"properties": []}, {"items": "x"},
                 {"anyOf": "x"}, {"allOf": [1, None]}, {"$ref": 4}, {"required": "a"},
                 {"enum": "abc"}, {"type": []}):
        out = clean(junk)
        assert isinstance(out, dict)


def test_deep_recursion_is_bounded():
    schema: dict = {"type": "string"}
    for _ in range(200):
        schema = {"type": "object", "properties": {"x": schema}}
    out = clean(schema)
    depth = 0
    while "properties" in out:
        out, depth = out["properties"]["x"], depth + 1
    assert depth <= 70


def test_to_json_schema():
    gemini = {"type": "OBJECT", "properties": {
        "a": {"type": "STRING", "nullable": True, "format": "enum", "enum": ["x", "y"]},
        "b": {"type": "ARRAY", "items": {"type": "INTEGER"}, "minItems": "1", "maxItems": "3"},
        "c": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}], "nullable": True}},
        "required": ["a"], "propertyOrdering": ["a", "b", "c"]}
    assert to_json_schema(gemini) == {"type": "object", "properties": {
        "a": {"type": ["string", "null"], "format": "enum", "enum": ["x", "y"]},
        "b": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
        "c": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]}},
        "required": ["a"], "propertyOrdering": ["a", "b", "c"]}
    assert clean(to_json_schema(gemini)) == {**gemini, "properties": {
        **gemini["properties"], "b": {"type": "ARRAY", "items": {"type": "INTEGER"},
                                      "minItems": 1, "maxItems": 3}}}


# ---------------------------------------------------------------------------------------------
# Properties


_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True)
_leaf = st.builds(
    lambda t, nullable, desc: {"type": t, **({"nullable": True} if nullable else {}),
                               **({"description": desc} if desc else {})},
    st.sampled_from(["STRING", "NUMBER", "INTEGER", "BOOLEAN"]), st.booleans(),
    st.none() | st.text(max_size=10))
_enum = st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True).map(
    lambda vs: {"type": "STRING", "enum": vs})


def _object(children):
    return st.dictionaries(_names, children, min_size=1, max_size=4).flatmap(
        lambda props: st.lists(st.sampled_from(sorted(props)), unique=True).map(
            lambda req: {"type": "OBJECT", "properties": props,
                         **({"required": req} if req else {})}))


gemini_schemas = st.recursive(
    _leaf | _enum,
    lambda children: _object(children) | children.map(lambda c: {"type": "ARRAY", "items": c}),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(gemini_schemas)
def test_gemini_schema_survives_json_schema_and_back(schema):
    assert clean(to_json_schema(schema)) == schema


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "properties", "items", "anyOf", "oneOf", "allOf", "$ref",
                         "enum", "const", "required", "nullable", "format", "description",
                         "additionalProperties", "$defs", "a", "b"]), c, max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_clean_of_anything_is_gemini_valid(value):
    out = clean(value)
    assert_gemini_valid(out)
    json.dumps(out)


def test_a_cached_result_is_the_callers_own_copy():
    """Results are cached by the schema's JSON text: whoever edits one does not edit the next."""
    schema = {"type": "object", "properties": {"path": {"type": "string", "format": "uri"}},
              "required": ["path"], "additionalProperties": False}
    first = clean(schema)
    first["properties"]["path"]["type"] = "EDITED"
    first["required"].append("other")
    again = clean(schema)
    assert again == {"type": "OBJECT", "properties": {"path": {"type": "STRING"}},
                     "required": ["path"]}
    assert again is not first and again["properties"] is not first["properties"]


def test_schemas_the_cache_does_not_take_are_cleaned_the_same():
    from types import MappingProxyType

    big = {"type": "object", "properties": {
        f"p{i}": {"type": "string", "description": "x" * 200} for i in range(100)}}
    assert len(json.dumps(big)) > 16 * 1024  # past the cached size
    assert clean(big)["properties"]["p99"] == {"type": "STRING", "description": "x" * 200}
    frozen = MappingProxyType({"type": "object", "properties": MappingProxyType(
        {"n": {"type": "integer", "minimum": 1}})})  # not JSON-serialisable as it is
    assert clean(frozen) == {"type": "OBJECT", "properties": {"n": {"type": "INTEGER",
                                                                    "minimum": 1}}}
    huge = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 2**70}}}
    assert clean(huge)["properties"]["n"]["maximum"] == 2**70  # exact, through the cache
