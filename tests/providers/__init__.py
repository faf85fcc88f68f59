"""Tests for cliproxyd.providers (a package so its module names do not clash with tests/formats)."""
