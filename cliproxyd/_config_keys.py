"""Keys of CLIProxyAPI config files that cliproxyd accepts but does not implement (a warning each).

Users bring their existing CLIProxyAPI config.yaml (issue 2 §3): these keys are reported in
`Config.warnings` and otherwise ignored; any key not listed here and not in the schema is an error.
Sources: reference/cliproxyapi-surface.md §8.1 and CLIProxyAPI's config.example.yaml (v6.9-v7.2).
"""

from __future__ import annotations

import types

TOP_WARN = frozenset({
    "logging-to-file", "logs-max-total-size-mb", "error-logs-max-files", "request-log",
    "commercial-mode", "passthrough-headers", "max-retry-credentials", "disable-cooling",
    "save-cooldown-status", "transient-error-cooldown-seconds", "quota-exceeded", "pprof",
    "enable-gemini-cli-endpoint", "nonstream-keepalive-interval", "auth-auto-refresh-workers",
    "antigravity-signature-cache-enabled", "antigravity-signature-bypass-strict",
    "antigravity-signature-cache-bypass-strict", "vertex-api-key", "interactions-api-key",
    "xai-api-key", "oauth-excluded-models", "oauth-model-alias", "oauth-request-scoped-errors",
    "payload", "ampcode", "claude-header-defaults", "codex-header-defaults",
    "disable-claude-cloak-mode", "claude-code", "codex", "xai", "antigravity", "plugins",
    "disable-image-generation", "gpt-image-2-base-model", "video-result-auth-cache-ttl",
    "redis-usage-queue-retention-seconds", "credential-concurrency", "credential-in-flight",
    "gemini-web", "kiro",
})
REMOTE_MANAGEMENT_WARN = frozenset({
    "disable-control-panel", "disable-auto-update-panel", "panel-github-repository",
})
ROUTING_WARN = frozenset({
    "session-affinity", "session-affinity-ttl", "session-affinity-subagents",
    "claude-code-session-affinity",
})
STREAMING_WARN = frozenset({"bootstrap-retries"})
# Per-credential fields shared by gemini-, claude- and codex-api-key entries.
PROVIDER_WARN = frozenset({"weight", "disable-cooling", "request-retry", "request-scoped-errors"})
CLAUDE_WARN = frozenset({
    "cloak", "experimental-cch-signing", "fingerprint-profile", "rebuild-mid-system-message",
})
CODEX_WARN = frozenset({"websockets", "alpha-search"})
MODEL_WARN = frozenset({
    "display-name", "max-context-length", "is-compat", "thinking", "force-mapping", "image",
    "input-modalities", "output-modalities",
})
ENTRY_WARN = frozenset({"weight"})
# `disabled` is checked by the schema: `false` warns, `true` is an error (ignoring it would
# switch a provider on).
COMPAT_WARN = PROVIDER_WARN | frozenset({"support-prompt-cache-key"})
COMPAT_HINTS = types.MappingProxyType({
    "api-keys": "the old CLIProxyAPI list form is not supported; use api-key-entries: [{api-key: ...}]",
    "api-key": "openai-compatibility takes api-key-entries: [{api-key: ...}]",
})
