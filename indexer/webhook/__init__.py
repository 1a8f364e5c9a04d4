"""Webhook delivery primitives: target validation and SSRF guard, and the HTTP sender."""
