"""Tests of cliproxyd/formats/aggregate.py: stream → response and response → stream."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import ir
from cliproxyd.formats.aggregate import Collector, collect, response_events

STREAM = [
    ir.MessageStart(id="msg_1", model="m", usage=ir.Usage(input_tokens=10)),
    ir.BlockStart(0, "thinking"),
    ir.ThinkingDelta(0, "Let me "),
    ir.ThinkingDelta(0, "think."),
    ir.ThinkingDelta(0, signature="sig=="),
    ir.BlockStop(0),
    ir.BlockStart(1, "text"),
    ir.TextDelta(1, "Hello"),
    ir.TextDelta(1, ", world"),
    ir.BlockStop(1),
    ir.ToolCallStart(2, "call_1", "get_weather"),
    ir.ToolArgsDelta(2, '{"city":'),
    ir.ToolArgsDelta(2, '"Paris"}'),
    ir.BlockStop(2),
    ir.BlockStart(3, "redacted_thinking", data="opaque"),
    ir.BlockStop(3),
    ir.UsageUpdate(ir.Usage(output_tokens=7)),
    ir.MessageStop(ir.StopReason.TOOL_USE, native_stop_reason="tool_use"),
]


def test_collect_joins_everything():
    resp = collect(STREAM)
    assert resp.id == "msg_1" and resp.model == "m"
    assert resp.parts == (
        ir.ThinkingPart("Let me think.", signature="sig=="),
        ir.TextPart("Hello, world"),
        ir.ToolCallPart("call_1", "get_weather", '{"city":"Paris"}'),
        ir.RedactedThinkingPart("opaque"),
    )
    assert resp.stop_reason is ir.StopReason.TOOL_USE
    assert resp.native_stop_reason == "tool_use"
    assert resp.usage == ir.Usage(input_tokens=10, output_tokens=7)


def test_usage_after_message_stop_is_merged():
    events = [ir.MessageStart(), ir.MessageStop(),
              ir.UsageUpdate(ir.Usage(input_tokens=3, output_tokens=4, total_tokens=7))]
    assert collect(events).usage.total_tokens == 7


def test_usage_merge_keeps_earlier_fields():
    events = [ir.MessageStart(usage=ir.Usage(input_tokens=5, cached_input_tokens=2)),
              ir.UsageUpdate(ir.Usage(output_tokens=1)),
              ir.UsageUpdate(ir.Usage(output_tokens=9, reasoning_tokens=3)),
              ir.MessageStop()]
    assert collect(events).usage == ir.Usage(input_tokens=5, output_tokens=9,
                                             cached_input_tokens=2, reasoning_tokens=3)


def test_tool_call_without_arguments_gets_empty_object():
    events = [ir.MessageStart(), ir.ToolCallStart(0, "c", "noop"), ir.BlockStop(0),
              ir.MessageStop(ir.StopReason.TOOL_USE)]
    assert collect(events).parts == (ir.ToolCallPart("c", "noop", "{}"),)


def test_stop_sequence_kept():
    events = [ir.MessageStart(), ir.MessageStop(ir.StopReason.STOP_SEQUENCE, "END")]
    resp = collect(events)
    assert resp.stop_reason is ir.StopReason.STOP_SEQUENCE and resp.stop_sequence == "END"


def test_stream_error_raises_its_error():
    err = ProxyError(ErrorKind.RATE_LIMITED, "slow down")
    with pytest.raises(ProxyError) as info:
        collect([ir.MessageStart(), ir.StreamError(err)])
    assert info.value is err


def test_missing_message_stop_is_upstream_error():
    with pytest.raises(ProxyError) as info:
        collect(STREAM[:-1])
    assert info.value.kind is ErrorKind.UPSTREAM_ERROR and info.value.status == 502


def test_collector_incremental_and_defaults():
    collector = Collector(response_id="fallback", model="asked")
    assert not collector.done
    collector.feed(ir.MessageStart())
    collector.feed(ir.TextDelta(0, "a"))  # a delta without a start still counts
    collector.feed(ir.MessageStop())
    assert collector.done
    resp = collector.result()
    assert (resp.id, resp.model, resp.parts) == ("fallback", "asked", (ir.TextPart("a"),))


def test_args_for_unknown_call_is_upstream_error():
    with pytest.raises(ProxyError) as info:
        collect([ir.MessageStart(), ir.ToolArgsDelta(0, "{}")])
    assert info.value.kind is ErrorKind.UPSTREAM_ERROR


def test_response_events_shape():
    resp = collect(STREAM)
    events = response_events(resp)
    assert events[0] == ir.MessageStart(id="msg_1", model="m", usage=ir.Usage(input_tokens=10))
    assert events[-2:] == [ir.UsageUpdate(resp.usage),
                           ir.MessageStop(ir.StopReason.TOOL_USE, None, "tool_use")]
    starts = [e.index for e in events if isinstance(e, (ir.BlockStart, ir.ToolCallStart))]
    stops = [e.index for e in events if isinstance(e, ir.BlockStop)]
    assert starts == stops == [0, 1, 2, 3]


def test_response_events_drops_parts_without_stream_form():
    resp = ir.Response(id="r", model="m", parts=(ir.ImagePart(url="http://x/i.png"),
                                                  ir.TextPart("after")))
    events = response_events(resp)
    assert events[1:4] == [ir.BlockStart(0, "text"), ir.TextDelta(0, "after"), ir.BlockStop(0)]
    assert ir.UsageUpdate not in {type(e) for e in events}  # nothing reported, nothing invented


_parts = st.lists(st.one_of(
    st.builds(ir.TextPart, st.text(max_size=20)),
    st.builds(ir.ThinkingPart, st.text(max_size=20), st.none() | st.text(min_size=1, max_size=8)),
    st.builds(ir.RedactedThinkingPart, st.text(max_size=8)),
    st.builds(ir.ToolCallPart, st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8),
              st.sampled_from(["{}", '{"a":1}', '{"q":"x y"}'])),
), max_size=5)
_usage = st.builds(ir.Usage, *(st.none() | st.integers(0, 10**6) for _ in range(6)))


@settings(max_examples=150, deadline=None)
@given(parts=_parts, usage=_usage, stop=st.sampled_from(list(ir.StopReason)))
def test_replay_then_collect_is_identity(parts, usage, stop):
    resp = ir.Response(id="r1", model="m1", parts=tuple(parts), stop_reason=stop, usage=usage)
    assert collect(response_events(resp)) == resp
