"""Tests for cliproxyd.routing."""
