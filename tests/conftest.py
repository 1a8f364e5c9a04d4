"""Root fixtures. Component fixtures live in tests/support/ and are registered here."""

pytest_plugins: list[str] = [
    "tests.support.postgres",  # first: the other fixtures import its Backend
    "tests.support.receiver",
    "tests.support.anvil",
    "tests.support.gateway",
    "tests.support.api",
    "tests.support.webhooks",
    "tests.support.browser",
]
