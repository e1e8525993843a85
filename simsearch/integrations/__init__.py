"""Thin adapters for other ecosystems (LangChain, ...), each installed as an extra."""
