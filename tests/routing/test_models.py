"""cliproxyd/routing/models.py: credentials from a Config, aliases, exclusions, prefixes,
suffix stripping, listing and stable credential ids."""

from __future__ import annotations

import pytest

from cliproxyd.config import APIKeyEntry, Config, ModelAlias, OpenAICompat, ProviderKey
from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.routing.catalog import builtin_models
from cliproxyd.routing.models import build_registry, credential_id, glob_match


def names(pairs):
    return [(c.label, m) for c, m in pairs]


def kinds(pairs):
    return [(c.kind, m) for c, m in pairs]


def test_builtin_catalogue_per_kind_and_default_base_urls():
    reg = build_registry(Config(gemini_api_key=(ProviderKey("g-key-0001"),),
                                claude_api_key=(ProviderKey("c-key-0001"),),
                                codex_api_key=(ProviderKey("x-key-0001"),)))
    g, c, x = reg.credentials
    assert g.base_url == "https://generativelanguage.googleapis.com"
    assert c.base_url == "https://api.anthropic.com"
    assert x.base_url == "https://api.openai.com/v1"
    assert [m.alias for m in g.models] == [m.id for m in builtin_models("gemini")]
    assert kinds(reg.resolve("claude-sonnet-4-5-20250929")) == [("claude", "claude-sonnet-4-5-20250929")]
    assert kinds(reg.resolve("gpt-5-codex")) == [("codex", "gpt-5-codex")]


def test_base_url_trailing_slash_and_headers_and_proxy_inheritance():
    cfg = Config(proxy_url="http://global:1",
                 claude_api_key=(ProviderKey("k-12345678", base_url="https://gw.example/",
                                             headers={"X-Team": "a"}),
                                 ProviderKey("k-87654321", proxy_url="http://own:2")))
    a, b = build_registry(cfg).credentials
    assert a.base_url == "https://gw.example" and dict(a.headers) == {"X-Team": "a"}
    assert a.proxy_url == "http://global:1" and b.proxy_url == "http://own:2"


def test_models_list_replaces_catalogue_alias_is_client_id_name_goes_upstream():
    cfg = Config(gemini_api_key=(ProviderKey("g-key-0001", models=(
        ModelAlias("gemini-2.5-pro", "smart"), ModelAlias("gemini-2.5-flash"))),))
    reg = build_registry(cfg)
    assert kinds(reg.resolve("smart")) == [("gemini", "gemini-2.5-pro")]
    assert kinds(reg.resolve("gemini-2.5-flash")) == [("gemini", "gemini-2.5-flash")]
    with pytest.raises(ProxyError):
        reg.resolve("gemini-2.5-pro")  # replaced: only the alias is served
    listed = {m.id: m for m in reg.listing()}
    assert set(listed) == {"smart", "gemini-2.5-flash"}
    assert listed["smart"].info.context_length == 1048576  # catalogue metadata follows the alias
    assert listed["smart"].info.display_name == "Gemini 2.5 Pro"


def test_openai_compat_serves_only_listed_models_one_credential_per_key():
    compat = OpenAICompat(name="openrouter", base_url="https://openrouter.ai/api/v1",
                          api_key_entries=(APIKeyEntry("or-key-0001"), APIKeyEntry("or-key-0002")),
                          models=(ModelAlias("moonshotai/kimi-k2", "kimi"),))
    reg = build_registry(Config(openai_compatibility=(compat,)))
    pairs = reg.resolve("kimi")
    assert [m for _, m in pairs] == ["moonshotai/kimi-k2", "moonshotai/kimi-k2"]
    assert [c.api_key for c, _ in pairs] == ["or-key-0001", "or-key-0002"]
    assert all(c.compat_name == "openrouter" for c, _ in pairs)
    listed = reg.listing()
    assert [(m.id, m.owned_by) for m in listed] == [("kimi", "openrouter")]


def test_compat_without_keys_is_one_keyless_credential():
    compat = OpenAICompat(name="local", base_url="http://127.0.0.1:9/v1",
                          models=(ModelAlias("llama"),))
    (cred,) = build_registry(Config(openai_compatibility=(compat,))).credentials
    assert cred.api_key == "" and cred.served("llama").upstream == "llama"


@pytest.mark.parametrize("pattern,name,hit", [
    ("gemini-2.5-pro", "gemini-2.5-pro", True),
    ("gemini-2.5-pro", "gemini-2.5-pro-x", False),
    ("gemini-2.5-*", "gemini-2.5-flash-lite", True),
    ("gemini-2.5-*", "gemini-3-pro-preview", False),
    ("*-preview", "gemini-3-pro-preview", True),
    ("*-preview", "gemini-2.5-pro", False),
    ("*flash*", "gemini-2.5-flash-lite", True),
    ("*flash*", "gemini-2.5-pro", False),
    ("GEMINI-*", "gemini-2.5-pro", True),
    ("*a*b*", "xaxbx", True),
    ("*a*b*", "xbxax", False),
    ("ab*ba", "aba", False),
])
def test_glob_match(pattern, name, hit):
    assert glob_match(pattern, name) is hit


def test_excluded_models_apply_to_catalogue_and_aliases():
    cfg = Config(gemini_api_key=(ProviderKey("g-key-0001", excluded_models=("*-preview", "*flash*")),),
                 claude_api_key=(ProviderKey("c-key-0001", models=(ModelAlias("claude-opus-4-1", "big"),),
                                             excluded_models=("big",)),))
    reg = build_registry(cfg)
    ids = {m.id for m in reg.listing()}
    assert ids == {"gemini-2.5-pro"}
    for gone in ("gemini-3-pro-preview", "gemini-2.5-flash", "big"):
        with pytest.raises(ProxyError):
            reg.resolve(gone)


def _prefixed(force: bool = False) -> Config:
    return Config(force_model_prefix=force, gemini_api_key=(
        ProviderKey("plain-key-01"),
        ProviderKey("team-a-key-1", prefix="team-a"),
        ProviderKey("team-b-key-1", prefix="team-b"),
    ))


def test_prefix_reaches_only_that_prefix():
    reg = build_registry(_prefixed())
    assert [c.prefix for c, _ in reg.resolve("team-a/gemini-2.5-pro")] == ["team-a"]
    assert [m for _, m in reg.resolve("team-a/gemini-2.5-pro")] == ["gemini-2.5-pro"]


def test_unprefixed_reaches_every_entry_unless_forced():
    reg = build_registry(_prefixed())
    assert [c.prefix for c, _ in reg.resolve("gemini-2.5-pro")] == ["", "team-a", "team-b"]
    forced = build_registry(_prefixed(force=True))
    assert [c.prefix for c, _ in forced.resolve("gemini-2.5-pro")] == [""]
    assert [c.prefix for c, _ in forced.resolve("team-b/gemini-2.5-pro")] == ["team-b"]


def test_unknown_prefix_is_tried_as_a_plain_id():
    compat = OpenAICompat(name="or", base_url="http://x/v1", models=(ModelAlias("meta/llama"),))
    reg = build_registry(Config(openai_compatibility=(compat,)))
    assert [m for _, m in reg.resolve("meta/llama")] == ["meta/llama"]


def test_listing_shows_prefixed_names_and_plain_ones_when_reachable():
    ids = [m.id for m in build_registry(_prefixed()).listing()]
    assert "team-a/gemini-2.5-pro" in ids and "team-b/gemini-2.5-pro" in ids
    assert ids.count("gemini-2.5-pro") == 1  # deduplicated
    forced = [m.id for m in build_registry(Config(force_model_prefix=True, gemini_api_key=(
        ProviderKey("team-a-key-1", prefix="team-a"),))).listing()]
    assert "gemini-2.5-pro" not in forced and "team-a/gemini-2.5-pro" in forced
    listed = build_registry(_prefixed()).find("team-a/gemini-2.5-pro")
    assert listed.info.id == "team-a/gemini-2.5-pro" and listed.kind == "gemini"


def test_thinking_suffix_is_stripped_for_routing():
    reg = build_registry(_prefixed())
    assert [m for _, m in reg.resolve("gemini-2.5-pro(high)")] == ["gemini-2.5-pro"] * 3
    assert [m for _, m in reg.resolve("team-a/gemini-2.5-flash(8192)")] == ["gemini-2.5-flash"]


def test_literal_id_with_parentheses_still_resolves():
    compat = OpenAICompat(name="x", base_url="http://x/v1", models=(ModelAlias("odd(high)"),))
    reg = build_registry(Config(openai_compatibility=(compat,)))
    assert [m for _, m in reg.resolve("odd(high)")] == ["odd(high)"]


def test_unknown_model_is_404_model_not_found():
    reg = build_registry(_prefixed())
    with pytest.raises(ProxyError) as info:
        reg.resolve("gpt-5")
    err = info.value
    assert err.kind is ErrorKind.MODEL_NOT_FOUND and err.status == 404
    assert err.code == "model_not_found" and "gpt-5" in err.message


def test_credential_ids_are_stable_distinct_and_secret_free():
    a = build_registry(_prefixed()).credentials
    b = build_registry(_prefixed(force=True)).credentials  # another reload, other settings
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.id for c in a}) == 3
    assert all("key" not in c.id for c in a)
    assert credential_id("gemini", "u", "k") != credential_id("claude", "u", "k")
    assert credential_id("gemini", "u", "k") != credential_id("gemini", "v", "k")
    assert "plain-key-01" not in repr(a[0]) and a[0].label.endswith("y-01")


def test_priority_is_carried_from_the_entry():
    cfg = Config(claude_api_key=(ProviderKey("k-00000001", priority=5),))
    assert build_registry(cfg).credentials[0].priority == 5


def test_gemini_style_models_prefix_is_accepted():
    reg = build_registry(_prefixed())
    assert [m for _, m in reg.resolve("models/gemini-2.5-pro")] == ["gemini-2.5-pro"] * 3


def test_registry_from_an_empty_config_serves_nothing():
    reg = build_registry(Config())
    assert reg.credentials == () and reg.listing() == [] and reg.find("gpt-5") is None
    with pytest.raises(ProxyError):
        reg.resolve("gpt-5")


def test_entry_proxy_direct_opts_out_of_the_global_proxy():
    from cliproxyd.config import parse_config
    from cliproxyd.routing.models import build_registry

    cfg = parse_config(
        'proxy-url: "http://proxy.local:3128"\n'
        'claude-api-key:\n'
        '  - api-key: "key-with-global-proxy"\n'
        '  - api-key: "key-going-direct-0001"\n'
        '    proxy-url: direct\n'
        '  - api-key: "key-own-proxy-000001"\n'
        '    proxy-url: "http://other.local:8080"\n')
    proxies = [c.proxy_url for c in build_registry(cfg).credentials]
    assert proxies == ["http://proxy.local:3128", "", "http://other.local:8080"]
