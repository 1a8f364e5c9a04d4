"""Test support: real components (anvil, HTTP receivers, fault proxies) as fixtures."""
