"""The management API's non-HTTP parts and its larger handler groups (issue 5).

* `config_edit`, `list_ops`: comment-preserving edits of config.yaml (ruamel.yaml round-trip);
* `files`: atomic writes and the auth-dir's credential files;
* `usage_handlers`, `auth_handlers`: the ``/usage*`` and ``/auth-files*`` routes (the config and
  settings routes are in `cliproxyd.handlers.management`).
"""
