"""cliproxyd: a self-hosted LLM API proxy (a Python re-implementation of CLIProxyAPI)."""

__version__ = "0.1.0"
