"""Settings: one immutable object built once at start-up from a TOML file and CHAINPAY_* variables.

Every rule failure raises ConfigError naming the source (file or variable) and the key, so the
CLI can print one line and exit 2. Unknown keys are errors too: a typo must not be ignored.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from indexer import preset
from indexer.domain.errors import ChainpayError
from indexer.domain.money import parse_amount
from indexer.domain.network import Asset, Network
from indexer.domain.pricing import (
    CURRENCY_DIGITS,
    PriceBook,
    PriceFeed,
    PricePeg,
    PricePolicy,
    parse_tolerance,
    split_pair,
)

ENV_PREFIX = "CHAINPAY_"
DEFAULT_FILE = "chainpay.toml"
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_SYMBOL = re.compile(r"^[A-Za-z0-9.]{1,16}$")
# An invoice's lifetime in seconds: the API's `expires_in` bounds, and so the default's too.
EXPIRES_IN_RANGE = (60, 30 * 86400)


class ConfigError(ChainpayError):
    """A configuration value is missing, unknown or invalid; names the source and the key."""

    def __init__(self, source: str, key: str, message: str) -> None:
        super().__init__(f"{source}: {key}: {message}")
        self.source = source
        self.key = key


@dataclass(frozen=True)
class WebhookSettings:
    allow_private_targets: bool = False
    timeout_seconds: float = 10.0
    max_concurrency_per_endpoint: int = 4


@dataclass(frozen=True)
class AnalyticsSettings:
    """[analytics]: the periodic Parquet export for analysts (off while export_dir is unset)."""

    export_dir: Path | None = None
    export_interval: int = 3600


@dataclass(frozen=True)
class PriceSettings:
    """[prices]: how feeds are trusted (docs/pricing.md). The per-network feeds are in
    `Settings.price_books`."""

    policy: PricePolicy = field(default_factory=PricePolicy)
    cache_seconds: float = 5.0  # the last good reading serves requests at most this long


@dataclass(frozen=True)
class SweepSettings:
    """[sweep]: forwarder stores' sweeps (docs/collecting-funds.md).

    `gas_key_file` names a key that only pays gas: with it, chainpay sends sweeps itself every
    `interval` seconds when the swept value is at least `gas_multiple` times the gas cost. The
    key cannot move merchant funds: a forwarder can only pay its treasury. A sweep still pending
    `replace_after` seconds later is replaced at its nonce with fees 12.5% higher, while the
    batch stays worth the multiple of its new cost. `alert_above` maps an asset symbol to a
    decimal amount: unswept value above it raises ChainpayUnsweptValueHigh.
    """

    gas_key_file: Path | None = None
    gas_multiple: int = 10
    interval: int = 300
    replace_after: int = 600
    alert_above: dict[str, str] = field(default_factory=dict)  # symbol -> decimal amount


@dataclass(frozen=True)
class Settings:
    source: str
    database: Path  # the DuckDB file (unused when `postgres_url` is set)
    public_url: str
    networks: dict[str, Network] = field(default_factory=dict)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    prices: PriceSettings = field(default_factory=PriceSettings)
    sweep: SweepSettings = field(default_factory=SweepSettings)
    price_books: dict[str, PriceBook] = field(default_factory=dict)  # by network name
    paid_tolerance_ppm: int = 0  # [invoices] paid_tolerance, in millionths of the amount
    duckdb_threads: int = 1
    postgres_url: str | None = None  # `database = "postgresql://…"`: PostgreSQL is the store
    default_expires_in: int = 900
    monitoring_window: int = 86400
    on_event_hook: str | None = None
    log_format: str = "text"
    log_level: str = "info"
    host: str = "127.0.0.1"
    port: int = 8080

    def network(self, name: str) -> Network | None:
        return self.networks.get(name)


# key -> (type, default); nested tables are handled by their own readers below.
_TOP_KEYS = {
    "database",
    "public_url",
    "networks",
    "webhooks",
    "invoices",
    "hooks",
    "log",
    "server",
    "analytics",
    "duckdb",
    "prices",
    "sweep",
}


def load_settings(
    path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None
) -> Settings:
    """Read the config file (explicit, $CHAINPAY_CONFIG, or ./chainpay.toml when present)."""
    env = dict(os.environ if env is None else env)
    chosen = path or env.get("CHAINPAY_CONFIG")
    if chosen is None and Path(DEFAULT_FILE).is_file():
        chosen = DEFAULT_FILE
    raw: dict[str, Any] = {}
    source = "defaults"
    if chosen is not None:
        source = str(chosen)
        try:
            raw = tomllib.loads(Path(chosen).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(source, "-", "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "-", f"not valid TOML ({exc})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(source, "-", f"cannot read ({exc})") from None
    overrides = _env_overrides(env)
    return _build(_merged(raw, overrides), source, overrides)


def _env_overrides(env: dict[str, str]) -> dict[tuple[str, ...], tuple[str, Any]]:
    """CHAINPAY_A__B=v sets key a.b; values parse as TOML literals, else as plain strings."""
    result: dict[tuple[str, ...], tuple[str, Any]] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or name == "CHAINPAY_CONFIG":
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        result[path] = (f"environment variable {name}", value)
    return result


def _merged(
    raw: dict[str, Any], overrides: dict[tuple[str, ...], tuple[str, Any]]
) -> dict[str, Any]:
    """The file's tables with every override set in place, so both meet the same checks: an
    unknown or misspelt key is refused whether it came from the file or a variable."""
    merged = copy.deepcopy(raw)
    for path, (origin, value) in overrides.items():
        if not all(path):
            raise ConfigError(origin, "-", "expected CHAINPAY_KEY or CHAINPAY_TABLE__KEY")
        table = merged
        for depth, part in enumerate(path[:-1]):
            inner = table.setdefault(part, {})
            if not isinstance(inner, dict):
                raise ConfigError(origin, ".".join(path[: depth + 1]), "is not a table")
            table = inner
        table[path[-1]] = value
    return merged


class _Reader:
    """Reads one table, remembering where each value came from for error messages."""

    def __init__(
        self,
        table: Any,
        source: str,
        prefix: str,
        overrides: dict[tuple[str, ...], tuple[str, Any]],
        path: tuple[str, ...] = (),
    ) -> None:
        if not isinstance(table, dict):
            raise ConfigError(source, prefix or "-", "must be a table")
        self.table = table
        self.source = source
        self.prefix = prefix
        self.overrides = overrides
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, message: str) -> ConfigError:
        override = self.overrides.get((*self.path, name))
        return ConfigError(override[0] if override else self.source, self.key(name), message)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        override = self.overrides.get((*self.path, name))
        value = override[1] if override else self.table.get(name, default)
        if value is None:
            return None
        # bool is an int in Python; a config that says `confirmations = true` is still wrong.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(name, f"expected {_type_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.fail(name, f"expected {_type_name(kind)}, got {type(value).__name__}")
        return value

    def require(self, name: str, kind: type | tuple[type, ...]) -> Any:
        value = self.get(name, kind)
        if value is None:
            raise self.fail(name, "is required")
        return value

    def only(self, allowed: set[str]) -> None:
        for name in self.table:
            if name not in allowed:
                raise self.fail(name, "unknown key")

    def sub(self, name: str, default: Any = None) -> _Reader:
        value = self.table.get(name, {} if default is None else default)
        return _Reader(value, self.source, self.key(name), self.overrides, (*self.path, name))


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", str: "a string", bool: "true or false", float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _build(
    raw: dict[str, Any], source: str, overrides: dict[tuple[str, ...], tuple[str, Any]]
) -> Settings:
    top = _Reader(raw, source, "", overrides)
    top.only(_TOP_KEYS)
    database = top.get("database", str, "./chainpay.duckdb")
    if not database.strip():
        raise top.fail("database", "must not be empty")
    postgres_url = None
    if "://" in database:  # a URL: PostgreSQL; a path: the embedded DuckDB file
        parts = urlsplit(database)
        if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise top.fail(
                "database",
                "expected a DuckDB file path or postgresql://user@host:5432/dbname",
            )
        postgres_url = database
    public_url = top.get("public_url", str, "http://127.0.0.1:8080").rstrip("/")
    if urlsplit(public_url).scheme not in ("http", "https") or not urlsplit(public_url).netloc:
        raise top.fail("public_url", f"not an http(s) URL: {public_url!r}")

    webhooks = top.sub("webhooks")
    webhooks.only({"allow_private_targets", "timeout_seconds", "max_concurrency_per_endpoint"})
    hook_settings = WebhookSettings(
        allow_private_targets=webhooks.get("allow_private_targets", bool, False),
        timeout_seconds=float(_positive(webhooks, "timeout_seconds", (int, float), 10.0)),
        max_concurrency_per_endpoint=_positive(webhooks, "max_concurrency_per_endpoint", int, 4),
    )
    invoices = top.sub("invoices")
    invoices.only({"default_expires_in", "monitoring_window", "paid_tolerance"})
    hooks = top.sub("hooks")
    hooks.only({"on_event"})
    on_event = hooks.get("on_event", str)
    if on_event is not None and not re.match(r"^[\w.]+:[\w.]+$", on_event):
        raise hooks.fail("on_event", f'expected "package.module:function", got {on_event!r}')
    log = top.sub("log")
    log.only({"format", "level"})
    log_format = log.get("format", str, "text")
    if log_format not in ("text", "json"):
        raise log.fail("format", 'expected "text" or "json"')
    log_level = log.get("level", str, "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise log.fail("level", 'expected "debug", "info", "warning" or "error"')
    analytics = top.sub("analytics")
    analytics.only({"export_dir", "export_interval"})
    export_dir = analytics.get("export_dir", str)
    if export_dir is not None and not export_dir.strip():
        raise analytics.fail("export_dir", "must not be empty")
    analytics_settings = AnalyticsSettings(
        export_dir=Path(export_dir) if export_dir is not None else None,
        export_interval=_positive(analytics, "export_interval", int, 3600),
    )
    duckdb = top.sub("duckdb")
    duckdb.only({"threads"})
    server = top.sub("server")
    server.only({"host", "port"})
    port = server.get("port", int, 8080)
    if not 0 <= port <= 65535:
        raise server.fail("port", "must be between 0 and 65535")

    networks_table = top.sub("networks")
    networks = {name: _network(networks_table, name) for name in networks_table.table}
    _one_network_per_chain(networks_table, networks)
    books = {name: _price_book(networks_table.sub(name), net) for name, net in networks.items()}
    return Settings(
        source=source,
        database=Path("chainpay.duckdb") if postgres_url else Path(database),
        postgres_url=postgres_url,
        public_url=public_url,
        networks=networks,
        webhooks=hook_settings,
        default_expires_in=_expires_in(invoices),
        monitoring_window=_positive(invoices, "monitoring_window", int, 86400, allow_zero=True),
        on_event_hook=on_event,
        log_format=log_format,
        log_level=log_level,
        host=server.get("host", str, "127.0.0.1"),
        port=port,
        analytics=analytics_settings,
        duckdb_threads=_positive(duckdb, "threads", int, 1),
        prices=_price_settings(top.sub("prices")),
        sweep=_sweep_settings(top.sub("sweep"), networks),
        price_books={name: book for name, book in books.items() if book.feeds or book.pegs},
        paid_tolerance_ppm=_tolerance(invoices),
    )


def _tolerance(invoices: _Reader) -> int:
    text = invoices.get("paid_tolerance", str, "0%")
    ppm = parse_tolerance(text)
    if ppm is None or ppm >= 1_000_000:
        raise invoices.fail(
            "paid_tolerance", f'expected a percentage below 100% such as "0.5%", got {text!r}'
        )
    return ppm


def _price_settings(prices: _Reader) -> PriceSettings:
    prices.only({"heartbeat_margin_seconds", "max_skew_seconds", "cache_seconds"})
    margin = _positive(prices, "heartbeat_margin_seconds", int, 120, allow_zero=True)
    skew = _positive(prices, "max_skew_seconds", int, 3600)
    cache = float(_positive(prices, "cache_seconds", (int, float), 5.0, allow_zero=True))
    if cache > 60:
        raise prices.fail("cache_seconds", "must be at most 60: a price is read at every head")
    return PriceSettings(PricePolicy(margin, skew), cache)


def _sweep_settings(sweep: _Reader, networks: dict[str, Network]) -> SweepSettings:
    sweep.only({"gas_key_file", "gas_multiple", "interval", "replace_after", "alert_above"})
    key_file = sweep.get("gas_key_file", str)
    if key_file is not None and not key_file.strip():
        raise sweep.fail("gas_key_file", "must not be empty")
    alert_above: dict[str, str] = {}
    table = sweep.get("alert_above", dict, {})
    for symbol, value in table.items():
        known = [n.asset(symbol) for n in networks.values() if n.asset(symbol) is not None]
        if not known:
            raise sweep.fail(f"alert_above.{symbol}", "no configured network has this asset")
        if not isinstance(value, str):
            raise sweep.fail(f"alert_above.{symbol}", 'expected a decimal string such as "1000"')
        for asset in known:
            assert asset is not None
            try:
                parse_amount(value, asset.decimals, f"alert_above.{symbol}")
            except ChainpayError as exc:
                raise sweep.fail(f"alert_above.{symbol}", str(exc)) from None
        alert_above[symbol] = value
    return SweepSettings(
        gas_key_file=Path(key_file) if key_file is not None else None,
        gas_multiple=_positive(sweep, "gas_multiple", int, 10),
        interval=_positive(sweep, "interval", int, 300),
        replace_after=_positive(sweep, "replace_after", int, 600),
        alert_above=alert_above,
    )


def _price_book(net: _Reader, network: Network) -> PriceBook:
    """[[networks.NAME.prices]]: `pair` + `feed` + `heartbeat`, or `asset` + `peg`."""
    value = net.get("prices", list, [])
    override = net.overrides.get((*net.path, "prices"))
    source = override[0] if override else net.source
    feeds: list[PriceFeed] = []
    pegs: list[PricePeg] = []
    pairs: set[str] = set()
    for i, entry in enumerate(value):
        item = _Reader(entry, source, f"{net.key('prices')}[{i}]", {}, ())
        item.only({"pair", "feed", "heartbeat", "asset", "peg"})
        if item.get("peg", str) is not None:
            peg = _peg(item, network)
            pair = peg.pair
            pegs.append(peg)
        else:
            feed = _feed(item, network)
            pair = feed.pair
            feeds.append(feed)
        if pair in pairs:
            raise item.fail("pair", f"{pair} is priced twice on network {network.name!r}")
        pairs.add(pair)
    return PriceBook(tuple(feeds), tuple(pegs))


def _feed(item: _Reader, network: Network) -> PriceFeed:
    if item.get("asset", str) is not None:
        raise item.fail("asset", "only with peg (a feed names its pair)")
    pair = item.require("pair", str)
    parts = split_pair(pair)
    if parts is None:
        raise item.fail("pair", f'expected "ASSET/CURRENCY" such as "ETH/USD", got {pair!r}')
    if network.asset(parts[0]) is None and parts[0] not in CURRENCY_DIGITS:
        raise item.fail(
            "pair", f"{parts[0]} is neither an asset of network {network.name!r} nor a currency"
        )
    address = item.require("feed", str)
    if not _ADDRESS.match(address) or not _checksum_ok(address):
        raise item.fail("feed", f"not a valid EIP-55 0x address: {address!r}")
    heartbeat = item.require("heartbeat", int)
    if not 1 <= heartbeat <= 7 * 86400:
        raise item.fail("heartbeat", "must be between 1 and 604800 seconds")
    return PriceFeed(pair, _to_checksum(address), heartbeat)


def _peg(item: _Reader, network: Network) -> PricePeg:
    for name in ("pair", "feed", "heartbeat"):
        if item.get(name, (str, int)) is not None:
            raise item.fail(name, "not with peg: a pegged asset reads no feed")
    currency = item.require("peg", str)
    if currency not in CURRENCY_DIGITS:
        raise item.fail("peg", f"unknown currency {currency!r}")
    asset = item.require("asset", str)
    token = network.asset(asset)
    if token is None or token.is_native:
        raise item.fail("asset", f"{asset!r} is not a token of network {network.name!r}")
    return PricePeg(asset, currency)


def _one_network_per_chain(parent: _Reader, networks: dict[str, Network]) -> None:
    """Two tails on one chain would credit every payment twice, under two network names."""
    first: dict[int, str] = {}
    for name, network in networks.items():
        other = first.setdefault(network.chain_id, name)
        if other != name:
            raise ConfigError(
                parent.source,
                parent.key(f"{name}.chain_id"),
                f"chain id {network.chain_id} is already network {other!r}",
            )


def _expires_in(invoices: _Reader) -> int:
    low, high = EXPIRES_IN_RANGE
    value: int = invoices.get("default_expires_in", int, 900)
    if not low <= value <= high:
        raise invoices.fail(
            "default_expires_in", f"must be between {low} and {high} seconds (as the API's)"
        )
    return value


def _positive(reader: _Reader, name: str, kind: Any, default: Any, allow_zero: bool = False) -> Any:
    value = reader.get(name, kind, default)
    if value < 0 or (value == 0 and not allow_zero):
        raise reader.fail(name, "must be greater than zero")
    return value


_NETWORK_KEYS = {
    "kind",
    "preset",
    "chain_id",
    "rpc_url",
    "confirmations",
    "native",
    "tokens",
    "title",
    "finality",
    "finality_wait_seconds",
    "block_time",
    "ready_lag_seconds",
    "max_lag_seconds",
    "prices",
    "forwarder_factory",
}


def _network(parent: _Reader, name: str) -> Network:
    if not _NAME.match(name):
        raise ConfigError(
            parent.source, parent.key(name), "network names are lowercase a-z, 0-9, _ or -"
        )
    net = parent.sub(name)
    net.only(_NETWORK_KEYS)
    base = _preset_of(net)
    kind = net.get("kind", str, "evm")
    if kind != "evm":
        raise net.fail("kind", f'only "evm" is supported, got {kind!r}')
    chain_id = net.get("chain_id", int, base.get("chain_id"))
    if chain_id is None:
        raise net.fail("chain_id", "is required (or a preset)")
    if chain_id <= 0:
        raise net.fail("chain_id", "must be a positive integer")
    if "chain_id" in base and chain_id != base["chain_id"]:
        raise net.fail(
            "chain_id",
            f"{chain_id} contradicts preset {net.get('preset', str)!r} (chain id "
            f"{base['chain_id']}): its token contracts exist on that chain only",
        )
    defaults = base or preset.by_chain_id(chain_id) or {}
    rpc_url = net.require("rpc_url", str)
    if (
        urlsplit(rpc_url).scheme not in ("ws", "wss", "http", "https")
        or not urlsplit(rpc_url).netloc
    ):
        raise net.fail(
            "rpc_url", "expected a ws://, wss://, http:// or https:// URL of your own node"
        )
    confirmations = net.get("confirmations", int, base.get("confirmations"))
    if confirmations is None:
        raise net.fail("confirmations", "is required (or a preset)")
    if not 1 <= confirmations <= 1000:
        raise net.fail("confirmations", "must be between 1 and 1000")
    native_reader = _Reader(
        {**base.get("native", {}), **_table(net, "native")},
        net.source, net.key("native"), net.overrides, (*net.path, "native"),
    )  # fmt: skip
    native_reader.only({"symbol", "decimals"})
    native = Asset(symbol=_symbol(native_reader), decimals=_decimals(native_reader))
    tokens = _tokens(net, name, chain_id, native.symbol, base)
    finality_wait = _positive(
        net, "finality_wait_seconds", int, base.get("finality_wait_seconds", 900)
    )
    default_pace = defaults.get("block_time", 12.0)
    block_time = float(_positive(net, "block_time", (int, float), default_pace))
    # Defaults in time, not blocks: a caught-up tail is up to one block plus propagation
    # behind, so readiness allows four blocks (at least 30 s), the alert ten (at least 2 min).
    ready_lag = float(_positive(net, "ready_lag_seconds", (int, float), max(30.0, 4 * block_time)))
    max_lag = float(_positive(net, "max_lag_seconds", (int, float), max(120.0, 10 * block_time)))
    return Network(
        name=name,
        chain_id=chain_id,
        rpc_url=rpc_url,
        confirmations=confirmations,
        native=native,
        tokens=tokens,
        title=net.get("title", str, "") or defaults.get("title") or _default_title(name),
        finality=_finality(net, base.get("finality", "depth")),
        finality_wait_seconds=finality_wait,
        block_time=block_time,
        ready_lag_seconds=ready_lag,
        max_lag_seconds=max_lag,
        preset=net.get("preset", str),
        forwarder_factory=_factory(net),
    )


def _factory(net: _Reader) -> str | None:
    """`forwarder_factory`: optional when the factory sits at its deterministic address."""
    value: str | None = net.get("forwarder_factory", str)
    if value is None:
        return None
    if not _ADDRESS.match(value) or _to_checksum(value) != value:
        raise net.fail("forwarder_factory", f"expected an EIP-55 checksummed address: {value!r}")
    return value


def _preset_of(net: _Reader) -> dict[str, Any]:
    """The preset's table this network starts from, or {} without `preset`."""
    name = net.get("preset", str)
    if name is None:
        return {}
    table = preset.preset(name)
    if table is None:
        raise net.fail("preset", f"unknown preset {name!r}; known: {', '.join(preset.NAMES)}")
    return table


def _table(net: _Reader, name: str) -> dict[str, Any]:
    value = net.table.get(name, {})
    if not isinstance(value, dict):
        raise net.fail(name, "must be a table")
    return value


def _finality(net: _Reader, default: str) -> str:
    value = net.get("finality", (str, bool), default)
    if isinstance(value, bool):  # before presets: true meant the `finalized` tag
        return "finalized" if value else "depth"
    if value not in preset.FINALITY_RULES:
        raise net.fail("finality", 'expected "depth", "safe" or "finalized"')
    return str(value)


def _tokens(
    net: _Reader, name: str, chain_id: int, native: str, base: dict[str, Any]
) -> tuple[Asset, ...]:
    """The preset's tokens, each replaced by a configured token of the same symbol, then the
    configured tokens that are new; every contract checked against every preset's tokens."""
    tokens_value = net.table.get("tokens", [])
    if not isinstance(tokens_value, list):
        raise net.fail("tokens", "expected an array of tables ([[networks.NAME.tokens]])")
    mine = [
        _Reader(entry, net.source, f"{net.key('tokens')}[{i}]", {}, ())
        for i, entry in enumerate(tokens_value)
    ]
    replaced = {r.table.get("symbol") for r in mine}
    readers = [
        _Reader(entry, f"preset {net.get('preset', str)!r}", f"tokens[{entry['symbol']}]", {})
        for entry in base.get("tokens", [])
        if entry["symbol"] not in replaced
    ] + mine
    tokens: list[Asset] = []
    seen = {native}
    contracts: set[str] = set()
    for tok in readers:
        tok.only({"symbol", "contract", "decimals"})
        symbol = _symbol(tok)
        if symbol in seen:
            raise tok.fail("symbol", f"duplicate symbol {symbol!r} in network {name!r}")
        seen.add(symbol)
        contract = tok.require("contract", str)
        if not _ADDRESS.match(contract):
            raise tok.fail("contract", f"not a valid 0x address: {contract!r}")
        if not _checksum_ok(contract):
            raise tok.fail("contract", f"bad EIP-55 checksum: {contract!r}")
        if contract.lower() in contracts:
            raise tok.fail("contract", f"contract {contract} is listed twice")
        contracts.add(contract.lower())
        decimals = _decimals(tok)
        _check_known(tok, contract, chain_id, symbol, decimals)
        tokens.append(Asset(symbol=symbol, decimals=decimals, contract=_to_checksum(contract)))
    return tuple(tokens)


def _check_known(tok: _Reader, contract: str, chain_id: int, symbol: str, decimals: int) -> None:
    """A contract some preset lists must be configured on its own chain, as what it is."""
    known = preset.known_tokens().get(contract.lower())
    if known is None:
        return
    if known.chain_id != chain_id:
        raise tok.fail(
            "contract",
            f"{contract} is {known.symbol} on {known.preset} (chain id {known.chain_id}), "
            f"not a token of chain id {chain_id}",
        )
    if (known.symbol, known.decimals) != (symbol, decimals):
        raise tok.fail(
            "contract",
            f"{contract} is {known.symbol} with {known.decimals} decimals on {known.preset}, "
            f"not {symbol} with {decimals}",
        )


def _symbol(reader: _Reader) -> str:
    symbol: str = reader.require("symbol", str)
    if not _SYMBOL.match(symbol):
        raise reader.fail("symbol", f"expected 1-16 letters or digits, got {symbol!r}")
    return symbol


def _decimals(reader: _Reader) -> int:
    decimals: int = reader.require("decimals", int)
    if not 0 <= decimals <= 36:
        raise reader.fail("decimals", "must be between 0 and 36")
    return decimals


def _checksum_ok(address: str) -> bool:
    """All-lowercase or all-uppercase hex carries no checksum; mixed case must be EIP-55."""
    body = address[2:]
    if body == body.lower() or body == body.upper():
        return True
    return _to_checksum(address) == address


def _to_checksum(address: str) -> str:
    from eth_utils.address import to_checksum_address  # local: heavy, and only needed here

    return str(to_checksum_address(address))


def _default_title(name: str) -> str:
    return name.replace("_", " ").replace("-", " ").title()
