"""OAuth subscription credentials (issue 7): login flows, the auth-dir files and token refresh.

* `oauth` — pure mechanics: PKCE, states, flow table, authorize URL, token bodies, JWT, times;
* `claude`, `codex` — per-provider data (`PROVIDERS` maps names and aliases to them);
* `store` — reading and writing ``auth-dir`` files (blocking; call from an executor);
* `tokens` — the blocking HTTP POST to a token endpoint (run in an executor);
* `accounts` — the OAuth accounts known to the daemon, their refresh state and the
  `routing.models.OAuthAccount` views the runtime is built from;
* `service` — `OAuthService`, the process-lifetime owner (login flows, refresh loop, rescans);
* `listener` — the temporary redirect-port listeners (Tornado); `login` — ``cliproxyd login``.

Only `oauth`, `claude` and `codex` are pure; importing this package does not import Tornado.
"""

from __future__ import annotations

from types import MappingProxyType

from cliproxyd.credentials import claude, codex

__all__ = ["MODULES", "PROVIDERS", "provider_module"]

# Provider name → its module (code_request, refresh_request, auth_fields, file_name, SPEC).
MODULES = MappingProxyType({"claude": claude, "codex": codex})
# Every name a user or API may use for a provider → the provider name.
PROVIDERS = MappingProxyType({alias: mod.SPEC.name for mod in MODULES.values()
                              for alias in mod.SPEC.aliases})


def provider_module(name: str):
    """The module of provider ``name`` (an alias such as ``anthropic`` works); KeyError if none."""
    return MODULES[PROVIDERS[name.strip().lower()]]
