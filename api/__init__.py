"""The outer ring: the aiohttp app, the CLI and the composition root that wires the process."""
