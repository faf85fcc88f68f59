"""The route table: `make_app(runtime_ref, state)` and nothing else.

Handlers get their dependencies through ``initialize(runtime_ref, state, route)``; ``route`` is
the rule's name and the only route label metrics ever see.  Order matters: the catch-alls at the
end give unknown paths under ``/v1``, ``/v1beta`` and ``/v0/management`` their area's access rule
(auth is checked before routing) and error shape.
"""

from __future__ import annotations

from typing import Any

from tornado.routing import Rule
from tornado.web import url

from cliproxyd.handlers.base import NotFoundHandler, ProxyApplication, log_request
from cliproxyd.handlers.management import (
    LIST_PATTERN,
    SCALAR_PATTERN,
    ConfigHandler,
    ConfigYAMLHandler,
    ListHandler,
    ScalarHandler,
)
from cliproxyd.handlers.misc import HealthHandler, MetricsHandler, RootHandler
from cliproxyd.handlers.oauth import (
    AuthStatusHandler,
    AuthURLHandler,
    CallbackHandler,
    OAuthCallbackHandler,
)
from cliproxyd.handlers.proxy import (
    ChatCompletionsHandler,
    CompletionsHandler,
    CountTokensHandler,
    GeminiActionHandler,
    GeminiModelHandler,
    GeminiModelsHandler,
    MessagesHandler,
    ModelsHandler,
    ResponsesHandler,
)
from cliproxyd.handlers.websocket import (
    OpenSockets,
    ResponsesWebSocketHandler,
    UpgradeMatches,
)
from cliproxyd.management.auth_handlers import (
    AuthFileDownloadHandler,
    AuthFilesHandler,
    AuthFileStatusHandler,
)
from cliproxyd.management.usage_handlers import (
    UsageExportHandler,
    UsageHandler,
    UsageImportHandler,
)
from cliproxyd.runtime import AppState, RuntimeRef

__all__ = ["make_app"]


def make_app(runtime_ref: RuntimeRef, state: AppState) -> ProxyApplication:
    """The Tornado application serving ``runtime_ref.current``; ``app.websockets`` holds its
    open Responses WebSockets (the daemon closes them on shutdown)."""
    sockets = OpenSockets()

    def rule(pattern: str, handler: type, name: str, **extra: Any) -> Any:
        return url(pattern, handler, dict(runtime_ref=runtime_ref, state=state, route=name, **extra), name=name)

    def unknown(pattern: str, name: str, client_format: str | None, access: str) -> Any:
        return rule(pattern, NotFoundHandler, name, client_format=client_format, access=access)

    routes = [
        # The API first: rules are tried in order, and these take nearly every request.
        rule(r"/v1/chat/completions", ChatCompletionsHandler, "chat_completions"),
        rule(r"/v1/completions", CompletionsHandler, "completions"),
        rule(r"/v1/messages", MessagesHandler, "messages"),
        rule(r"/v1/messages/count_tokens", CountTokensHandler, "count_tokens"),
        # One path, two rules: GET is the WebSocket upgrade, anything else the HTTP API.
        Rule(UpgradeMatches(r"/v1/responses$"), ResponsesWebSocketHandler,
             {"runtime_ref": runtime_ref, "state": state, "route": "responses_websocket",
              "sockets": sockets}, name="responses_websocket"),
        rule(r"/v1/responses", ResponsesHandler, "responses"),
        rule(r"/v1/models", ModelsHandler, "models"),
        rule(r"/v1beta/models", GeminiModelsHandler, "gemini_models"),
        rule(r"/v1beta/models/([^/:]+)", GeminiModelHandler, "gemini_model"),
        rule(r"/v1beta/models/([^/:]+):([A-Za-z]+)", GeminiActionHandler, "gemini_action"),
        rule(r"/", RootHandler, "root"),
        rule(r"/healthz", HealthHandler, "healthz"),
        rule(r"/metrics", MetricsHandler, "metrics"),
        # OAuth logins (issue 7): before the management settings and catch-all.
        rule(r"/v0/management/anthropic-auth-url", AuthURLHandler, "management_anthropic_auth_url",
             provider="claude"),
        rule(r"/v0/management/codex-auth-url", AuthURLHandler, "management_codex_auth_url",
             provider="codex"),
        rule(r"/v0/management/get-auth-status", AuthStatusHandler, "management_auth_status_poll"),
        rule(r"/v0/management/oauth-callback", OAuthCallbackHandler, "management_oauth_callback"),
        rule(r"/anthropic/callback", CallbackHandler, "oauth_callback_anthropic", provider="claude"),
        rule(r"/codex/callback", CallbackHandler, "oauth_callback_codex", provider="codex"),
        # Part two of the OAuth work adds these providers; until then "provider not enabled".
        rule(r"/google/callback", CallbackHandler, "oauth_callback_google", provider=None),
        rule(r"/iflow/callback", CallbackHandler, "oauth_callback_iflow", provider=None),
        rule(r"/antigravity/callback", CallbackHandler, "oauth_callback_antigravity",
             provider=None),
        rule(r"/v0/management/config", ConfigHandler, "management_config"),
        rule(r"/v0/management/config\.yaml", ConfigYAMLHandler, "management_config_yaml"),
        rule(rf"/v0/management/{SCALAR_PATTERN}", ScalarHandler, "management_setting"),
        rule(rf"/v0/management/{LIST_PATTERN}", ListHandler, "management_list"),
        rule(r"/v0/management/usage", UsageHandler, "management_usage"),
        rule(r"/v0/management/usage/export", UsageExportHandler, "management_usage_export"),
        rule(r"/v0/management/usage/import", UsageImportHandler, "management_usage_import"),
        rule(r"/v0/management/auth-files", AuthFilesHandler, "management_auth_files"),
        rule(r"/v0/management/auth-files/download", AuthFileDownloadHandler,
             "management_auth_download"),
        rule(r"/v0/management/auth-files/status", AuthFileStatusHandler, "management_auth_status"),
        # Catch-alls: keep last.
        unknown(r"/v0/management(?:/.*)?", "management_unknown", None, "management"),
        unknown(r"/v1/messages(?:/.*)?", "claude_unknown", "claude", "client"),
        unknown(r"/v1beta(?:/.*)?", "gemini_unknown", "gemini", "client"),
        unknown(r"/v1(?:/.*)?", "openai_unknown", "openai_chat", "client"),
    ]
    app = ProxyApplication(
        routes,
        runtime_ref,
        state,
        default_handler_class=NotFoundHandler,
        default_handler_args={"runtime_ref": runtime_ref, "state": state, "route": "unmatched"},
        log_function=log_request(state),
        compress_response=False,
    )
    app.websockets = sockets
    return app
