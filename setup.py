"""Packaging for cliproxyd."""

import re
from pathlib import Path

from setuptools import find_packages, setup

_version = re.search(
    r'__version__ = "([^"]+)"', Path(__file__).with_name("cliproxyd").joinpath("__init__.py").read_text()
).group(1)

setup(
    name="cliproxyd",
    version=_version,
    description="Self-hosted LLM API proxy: any client format to any upstream, by API key or OAuth login",
    long_description=Path(__file__).with_name("README.rst").read_text(),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["cliproxyd", "cliproxyd.*"]),
    install_requires=[
        "tornado>=6.4",
        "pyyaml>=6.0",
        "requests-oauthlib>=2.0",
        "requests>=2.28",  # OAuth token endpoints (cliproxyd.credentials.tokens)
        "sdnotify>=0.3.2",
        "prometheus-client>=0.20",
        # pycurl: Tornado's curl_httpclient keeps upstream connections alive (the simple client
        # opens one per request), does DNS asynchronously and speaks SOCKS and HTTPS proxies;
        # on the benchmark it is the largest single gain (issue 8).  Wheels bundle libcurl.
        "pycurl>=7.45",
        # bcrypt: `secret-key` may be a bcrypt hash as CLIProxyAPI writes them; hashing is not
        # something to write ourselves.
        "bcrypt>=4.0",
        # ruamel.yaml: management edits of config.yaml must keep the operator's comments and key
        # order; PyYAML cannot round-trip comments, ruamel.yaml's round-trip mode does and is
        # maintained.
        "ruamel.yaml>=0.18",
        # uvloop: the event loop under Tornado.  Its timers and callbacks cost a fraction of
        # asyncio's; on the benchmark streams/s rose about 20 % (issue 8).  Linux and macOS only,
        # and the daemon falls back to asyncio without it.
        "uvloop>=0.19; sys_platform != 'win32'",
        # orjson: parses and writes JSON several times faster than the standard library, and a
        # proxy parses every streamed event; cliproxyd.jsontext routes the corners where it
        # would answer differently back to the standard library (issue 8).
        "orjson>=3.9",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "openai>=1.40",
            "anthropic>=0.40",
            "google-genai>=1.0",
            "websockets>=13",
            # The SDKs' own HTTP layer: tests give them an httpx2 MockTransport to parse our
            # streams offline.  cryptography makes the self-signed certificates of the TLS tests.
            "httpx2",
            "cryptography>=42",
            "ruff>=0.5",
        ],
    },
    entry_points={"console_scripts": ["cliproxyd = cliproxyd.cli:main"]},
)
