"""Unit tests of the pure parts of cliproxyd/handlers/websocket.py: `Conversation` (how a
socket's messages become stateless Responses requests), `prewarm_frames` and `error_frame`."""

from __future__ import annotations

import json

import pytest

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.handlers.websocket import Conversation, error_frame, prewarm_frames

USER1 = {"type": "message", "role": "user", "content": "first"}
USER2 = {"type": "message", "role": "user", "content": "second"}
ANSWER = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
          "content": [{"type": "output_text", "text": "hello", "annotations": []}]}
CALL = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
        "arguments": "{}", "status": "completed"}


def started(**extra) -> Conversation:
    conv = Conversation()
    first = conv.next_request({"type": "response.create", "model": "m", "instructions": "be brief",
                               "input": [USER1], **extra})
    conv.completed(first, [ANSWER])
    return conv


def test_first_create_is_the_body_without_type_and_with_stream_forced():
    body = Conversation().next_request({"type": "response.create", "model": "m", "stream": False,
                                        "input": "hi", "generate": True, "tools": []})
    assert body == {"model": "m", "stream": True, "input": "hi", "tools": []}


def test_first_create_defaults_input_to_an_empty_list():
    assert Conversation().next_request({"type": "response.create", "model": "m"})["input"] == []


@pytest.mark.parametrize("message, text", [
    ({"type": "response.create", "input": []}, "missing model in response.create request"),
    ({"type": "response.create", "model": "", "input": []}, "missing model"),
    ({"type": "response.append", "input": []}, "websocket request received before response.create"),
    ({"type": "response.cancel"}, "unsupported websocket request type: response.cancel"),
    ({"input": []}, "unsupported websocket request type: None"),
])
def test_bad_messages_are_400(message, text):
    with pytest.raises(ProxyError) as info:
        Conversation().next_request(message)
    assert info.value.status == 400
    assert text in info.value.message


def test_previous_response_id_on_the_first_request_is_not_found():
    with pytest.raises(ProxyError) as info:
        Conversation().next_request({"type": "response.create", "model": "m",
                                     "previous_response_id": "resp_x", "input": []})
    assert info.value.code == "previous_response_not_found"
    assert info.value.status == 400


def test_append_needs_an_array_input():
    with pytest.raises(ProxyError) as info:
        started().next_request({"type": "response.append", "input": "more"})
    assert info.value.message == "websocket request requires array field: input"


def test_append_expands_to_previous_input_output_and_new_input():
    body = started().next_request({"type": "response.append", "input": [USER2]})
    assert body["input"] == [USER1, ANSWER, USER2]
    assert body["model"] == "m" and body["instructions"] == "be brief"
    assert body["stream"] is True and "type" not in body


def test_later_create_with_previous_response_id_expands_and_drops_the_id():
    body = started().next_request({"type": "response.create", "previous_response_id": "resp_1",
                                   "input": [USER2]})
    assert body["input"] == [USER1, ANSWER, USER2]
    assert "previous_response_id" not in body and body["model"] == "m"


def test_later_create_may_change_model_and_instructions():
    body = started().next_request({"type": "response.create", "model": "other",
                                   "instructions": "be long", "input": [USER2]})
    assert (body["model"], body["instructions"]) == ("other", "be long")
    assert body["input"] == [USER1, ANSWER, USER2]


def test_three_turns_accumulate():
    conv = started()
    second = conv.next_request({"type": "response.append", "input": [USER2]})
    conv.completed(second, [CALL])
    third = conv.next_request({"type": "response.append", "input": [
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"}]})
    assert [i.get("type") for i in third["input"]] == [
        "message", "message", "message", "function_call", "function_call_output"]


def test_a_create_replaying_model_output_replaces_the_transcript():
    replay = [USER1, ANSWER, USER2]
    body = started().next_request({"type": "response.create", "input": replay})
    assert body["input"] == replay  # not USER1, ANSWER, USER1, ANSWER, USER2
    assert body["model"] == "m" and body["instructions"] == "be brief"


def test_a_replay_with_a_function_call_replaces_too():
    body = started().next_request({"type": "response.create", "input": [USER1, CALL]})
    assert body["input"] == [USER1, CALL]


def test_a_failed_turn_leaves_the_conversation_unchanged():
    conv = started()
    conv.next_request({"type": "response.append", "input": [USER2]})  # never completed
    body = conv.next_request({"type": "response.append", "input": [USER2]})
    assert body["input"] == [USER1, ANSWER, USER2]


def test_messages_are_not_modified():
    message = {"type": "response.append", "input": [USER2]}
    conv = started()
    conv.next_request(message)
    assert message == {"type": "response.append", "input": [USER2]}


def test_prewarm_frames_are_created_then_completed_with_no_output_and_zero_usage():
    frames = [json.loads(f) for f in prewarm_frames(
        {"model": "m", "instructions": "hi", "input": []}, 1_700_000_000, "resp_prewarm_abc")]
    assert [f["type"] for f in frames] == ["response.created", "response.completed"]
    assert [f["sequence_number"] for f in frames] == [0, 1]
    done = frames[1]["response"]
    assert done["id"] == "resp_prewarm_abc" and done["status"] == "completed"
    assert done["output"] == [] and done["model"] == "m"
    assert done["usage"]["input_tokens"] == 0 and done["usage"]["output_tokens"] == 0


def test_error_frame_shape():
    frame = json.loads(error_frame(ProxyError(ErrorKind.RATE_LIMITED, "slow down")))
    assert frame["type"] == "error" and frame["status"] == 429
    assert frame["error"]["message"] == "slow down"
    assert frame["error"]["type"] == "rate_limit_error"
    assert "code" in frame["error"] and "sequence_number" not in frame
    assert json.loads(error_frame(ProxyError(ErrorKind.INTERNAL, "x"), 7))["sequence_number"] == 7
