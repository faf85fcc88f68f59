"""cliproxyd.management.config_edit and list_ops: round-trip edits keep comments, key order,
quoting and indentation; list semantics follow the reference (§5.2); bad requests are 400/404;
the result always passes `parse_config` when the request was sound."""

from __future__ import annotations

import pytest

from cliproxyd.config import parse_config
from cliproxyd.management.config_edit import ConfigDocument, EditError
from cliproxyd.management.list_ops import delete_items, patch_items, put_items

CONFIG = """\
# cliproxyd config (operator's notes)
port: 8317   # the port
api-keys:
  - "k1"   # laptop
  - 'k2'
# upstream keys below
claude-api-key:
  - api-key: "sk-ant-1"
    base-url: "https://a.example"   # team A
  - api-key: "sk-ant-2"
    base-url: "https://b.example"
  - api-key: "sk-ant-2"
    base-url: "https://c.example"
openai-compatibility:
  - name: or
    base-url: https://openrouter.ai/api/v1
routing:
  strategy: round-robin
"""


def edit(fn, text: str = CONFIG) -> str:
    doc = ConfigDocument(text)
    fn(doc)
    out = doc.dump()
    parse_config(out)  # every sound edit leaves a valid config
    return out


def query(**params):
    return lambda name: params.get(name.replace("-", "_"))


def test_unchanged_document_round_trips_exactly():
    assert ConfigDocument(CONFIG).dump() == CONFIG


def test_patch_api_keys_keeps_every_comment_and_the_key_order():
    out = edit(lambda d: patch_items(d, "api-keys", {"old": "absent", "new": "k3"}))
    for comment in ("# cliproxyd config (operator's notes)", "# the port", "# laptop",
                    "# upstream keys below", "# team A"):
        assert comment in out
    assert out.index("k2") < out.index("k3") < out.index("# upstream keys below")
    keys = [line.split(":")[0] for line in out.splitlines() if line and line[0].isalpha()]
    assert keys == ["port", "api-keys", "claude-api-key", "openai-compatibility", "routing"]
    assert "'k2'" in out and '"k1"' in out  # quoting preserved


def test_string_list_operations():
    assert parse_config(edit(lambda d: patch_items(d, "api-keys", {"index": 0, "value": "x"}))).api_keys == ("x", "k2")
    assert parse_config(edit(lambda d: patch_items(d, "api-keys", {"old": "k2", "new": "y"}))).api_keys == ("k1", "y")
    assert parse_config(edit(lambda d: delete_items(d, "api-keys", query(value="k1")))).api_keys == ("k2",)
    assert parse_config(edit(lambda d: delete_items(d, "api-keys", query(index="1")))).api_keys == ("k1",)
    out = edit(lambda d: put_items(d, "api-keys", {"items": ["a", "b", "c"]}))
    assert parse_config(out).api_keys == ("a", "b", "c") and "# upstream keys below" in out
    assert parse_config(edit(lambda d: put_items(d, "api-keys", []))).api_keys == ()


@pytest.mark.parametrize("op, status, message", [
    (lambda d: patch_items(d, "api-keys", {"index": 9, "value": "x"}), 404, "item not found"),
    (lambda d: patch_items(d, "api-keys", {"value": "x"}), 400, "missing fields"),
    (lambda d: patch_items(d, "api-keys", {"index": 0, "value": 5}), 400, "value must be a string"),
    (lambda d: patch_items(d, "api-keys", {"index": True, "value": "x"}), 400, "index must be an integer"),
    (lambda d: delete_items(d, "api-keys", query()), 400, "missing index or value"),
    (lambda d: put_items(d, "api-keys", {"items": []}), 400, "items must not be empty"),
    (lambda d: put_items(d, "api-keys", ["ok", 1]), 400, r"api-keys\[1\] must be a string"),
    (lambda d: put_items(d, "api-keys", "k"), 400, "expected a JSON array"),
    (lambda d: put_items(d, "claude-api-key", [{"api-key": "x", "colour": "red"}]), 400,
     r"claude-api-key\[0\].colour is not a known field"),
    (lambda d: put_items(d, "claude-api-key", [{"api-key": "x", "priority": "1"}]), 400,
     r"claude-api-key\[0\].priority must be an integer"),
    (lambda d: patch_items(d, "claude-api-key", {"match": "nope", "value": {"prefix": "p"}}), 404,
     "item not found"),
    (lambda d: delete_items(d, "claude-api-key", query(api_key="sk-ant-2")), 400,
     "multiple items match api-key; base-url is required"),
    (lambda d: delete_items(d, "openai-compatibility", query()), 400, "missing index or name"),
])
def test_bad_requests(op, status, message):
    with pytest.raises(EditError, match=message) as info:
        op(ConfigDocument(CONFIG))
    assert info.value.status == status


def test_object_list_patch_by_match_updates_fields_in_place():
    out = edit(lambda d: patch_items(d, "claude-api-key", {
        "match": "sk-ant-1", "value": {"prefix": "team-a", "headers": {"X-Team": "a"}}}))
    cfg = parse_config(out)
    assert cfg.claude_api_key[0].prefix == "team-a" and cfg.claude_api_key[0].headers["X-Team"] == "a"
    assert "# team A" in out


def test_object_list_patch_with_empty_key_deletes_the_entry():
    out = edit(lambda d: patch_items(d, "claude-api-key", {"index": 0, "value": {"api-key": ""}}))
    assert [k.base_url for k in parse_config(out).claude_api_key] == ["https://b.example",
                                                                     "https://c.example"]
    out = edit(lambda d: patch_items(d, "openai-compatibility", {"name": "or", "value": {"base-url": ""}}))
    assert parse_config(out).openai_compatibility == ()


def test_object_list_delete_by_key_and_base_url_and_idempotent():
    out = edit(lambda d: delete_items(d, "claude-api-key", query(api_key="sk-ant-2", base_url="https://c.example/")))
    assert [k.base_url for k in parse_config(out).claude_api_key] == ["https://a.example", "https://b.example"]
    out = edit(lambda d: delete_items(d, "claude-api-key", query(api_key="not-there")))
    assert len(parse_config(out).claude_api_key) == 3
    out = edit(lambda d: delete_items(d, "openai-compatibility", query(name="or")))
    assert parse_config(out).openai_compatibility == ()


def test_object_list_put_and_new_list_key():
    out = edit(lambda d: put_items(d, "gemini-api-key", {"items": [{"api-key": "AIza-1", "prefix": "g"}]}))
    assert parse_config(out).gemini_api_key[0].prefix == "g"
    assert out.index("routing:") < out.index("gemini-api-key:")  # appended, others untouched


def test_scalars_set_top_level_and_nested_keys():
    out = edit(lambda d: (d.set_scalar(("debug",), True), d.set_scalar(("routing", "strategy"), "fill-first")))
    cfg = parse_config(out)
    assert cfg.debug is True and cfg.routing.strategy == "fill-first"
    out = edit(lambda d: d.set_scalar(("routing", "strategy"), "fill-first"), "port: 1\n")
    assert parse_config(out).routing.strategy == "fill-first"


def test_empty_file_can_be_edited():
    assert parse_config(edit(lambda d: put_items(d, "api-keys", ["a"]), "")).api_keys == ("a",)


def test_indentation_style_is_kept():
    flush = "api-keys:\n- a\n- b\n"
    assert edit(lambda d: patch_items(d, "api-keys", {"old": "x", "new": "c"}), flush) == "api-keys:\n- a\n- b\n- c\n"


@pytest.mark.parametrize("hostile", [
    "a: !!python/object/apply:os.system ['true']\n",
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"),
    "key: [unclosed\n",
])
def test_hostile_or_broken_yaml_on_disk_is_refused(hostile):
    with pytest.raises(EditError) as info:
        ConfigDocument(hostile)
    assert info.value.status == 400
