"""chainpay's core: domain, wallet, DuckDB store, chain tail, matcher, services and workers."""

__version__ = "0.1.0"
