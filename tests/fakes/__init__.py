"""Fakes for tests: upstream providers speaking their real wire formats (`upstreams`)."""

from tests.fakes.upstreams import (
    KINDS,
    MODES,
    FakeUpstream,
    Reply,
    make_app,
    start_fake,
)

__all__ = ["KINDS", "MODES", "FakeUpstream", "Reply", "make_app", "start_fake"]
