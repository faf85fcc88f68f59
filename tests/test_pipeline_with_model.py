"""cliproxyd.pipeline.with_model: the client's model name put into a passed-through stream
event in place of the upstream's, spliced where it can be and rewritten where it cannot."""

from __future__ import annotations

import json

import pytest

from cliproxyd.pipeline import with_model


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")], ids=["compact", "spaced"])
def test_the_field_is_spliced_and_nothing_else_changes(separators):
    chunk = {"id": "c1", "model": "up-m", "choices": [{"delta": {"content": '"model":"up-m"'}}]}
    data = json.dumps(chunk, separators=separators)
    out = with_model(data, "up-m", "alias/m")
    assert out == data.replace("up-m", "alias/m", 1)  # the text in the content is not the field
    assert json.loads(out)["choices"][0]["delta"]["content"] == '"model":"up-m"'


@pytest.mark.parametrize("event, path", [
    ({"type": "message_start", "message": {"id": "msg", "model": "claude-x", "content": []}},
     ("message", "model")),
    ({"type": "response.created", "response": {"id": "resp", "model": "claude-x"}},
     ("response", "model")),
    ({"id": "c1", "model": "claude-x", "choices": []}, ("model",)),
])
def test_a_field_it_cannot_splice_is_rewritten_where_the_format_keeps_it(event, path):
    event = json.loads(json.dumps(event).replace("claude-x", "cl\\u00e4ude-x"))  # now "cläude-x"
    data = json.dumps(event)  # ensure_ascii: the name is written with a \\u escape
    out = json.loads(with_model(data, "cläude-x", "ours"))
    holder = out
    for key in path[:-1]:
        holder = holder[key]
    assert holder[path[-1]] == "ours"
    holder[path[-1]] = "cläude-x"
    assert out == event


def test_gemini_names_it_model_version():
    chunk = {"candidates": [{"content": {"parts": [{"text": "modelVersion"}]}}],
             "modelVersion": "gemini-up", "responseId": "r1"}
    data = json.dumps(chunk)
    assert json.loads(with_model(data, "gemini-up", "g", "modelVersion")) == dict(
        chunk, modelVersion="g")
    escaped = data.replace("gemini-up", "gemini-\\u00fcp")  # written as "gemini-\u00fcp"
    assert json.loads(with_model(escaped, "gemini-üp", "g", "modelVersion"))["modelVersion"] == "g"
