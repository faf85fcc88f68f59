"""cliproxyd/runtime.py: OAuth accounts in `Runtime.build` (issue 7)."""

from __future__ import annotations

from cliproxyd.config import Config
from cliproxyd.routing.models import OAuthAccount
from cliproxyd.runtime import Runtime

ACCOUNT = OAuthAccount(name="claude-a@x.json", kind="claude", access_token="t")


def test_accounts_join_the_registry_and_survive_a_config_only_rebuild():
    first = Runtime.build(Config(), accounts=(ACCOUNT,))
    assert [c.id for c in first.registry.credentials] == ["claude-a@x.json"]
    # A management config edit rebuilds without accounts: the previous ones are kept.
    again = Runtime.build(Config(request_retry=1), previous=first)
    assert again.accounts == (ACCOUNT,)
    assert [c.id for c in again.registry.credentials] == ["claude-a@x.json"]
    assert Runtime.build(Config(), previous=again, accounts=()).registry.credentials == ()
    assert Runtime.build(Config()).accounts == ()
