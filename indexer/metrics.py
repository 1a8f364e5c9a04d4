"""The Prometheus metric catalogue: every metric chainpay exports, defined once.

Labels are bounded: network and asset names come from the config, routes from the router,
outcomes and kinds from fixed vocabularies. Never an invoice id, address or URL as a label.
Dashboards in ops/grafana and rules in ops/prometheus name only metrics defined here
(a test checks that).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

BUILD = Info("chainpay_build", "chainpay version")

# --- chain tail, per network -------------------------------------------------------------
NODE_HEAD = Gauge("chainpay_node_head_block", "Latest block number the node reported", ["network"])
PROCESSED_HEIGHT = Gauge(
    "chainpay_processed_block", "Highest block number committed by the indexer", ["network"]
)
LAG_BLOCKS = Gauge(
    "chainpay_lag_blocks",
    "Node head minus processed block; estimated from block_time while the node is down or silent",
    ["network"],
)
LAG_SECONDS = Gauge(
    "chainpay_lag_seconds",
    "Wall clock minus the last processed block's timestamp (ticks on while the node is down)",
    ["network"],
)
MAX_LAG_SECONDS = Gauge(
    "chainpay_max_lag_seconds",
    "The network's configured max_lag_seconds: ChainpayNetworkLagging fires above it",
    ["network"],
)
NETWORK_READY = Gauge(
    "chainpay_network_ready", "1 while the network counts as ready in /readyz", ["network"]
)
NODE_SYNCING = Gauge(
    "chainpay_node_syncing", "1 while the node reports eth_syncing or an old head", ["network"]
)
NODE_SYNC_HIGHEST = Gauge(
    "chainpay_node_sync_highest_block",
    "highestBlock of the node's eth_syncing answer while it syncs",
    ["network"],
)
LAST_HEAD_SEEN = Gauge(
    "chainpay_last_head_timestamp_seconds",
    "Unix time when the node last announced a new head",
    ["network"],
)
BLOCKS_PROCESSED = Counter(
    "chainpay_blocks_processed_total", "Blocks processed and committed", ["network"]
)
TRANSFERS_PROCESSED = Counter(
    "chainpay_transfers_processed_total", "Transfers of configured assets stored", ["network"]
)
PAYMENTS_MATCHED = Counter(
    "chainpay_payments_matched_total",
    "Transfers to issued addresses recorded as payments",
    ["network", "asset"],
)
BLOCK_PROCESSING_SECONDS = Histogram(
    "chainpay_block_processing_seconds",
    "Time to fetch, match and commit one block",
    ["network"],
    buckets=_LATENCY,
)
REORGS = Counter("chainpay_reorgs_total", "Chain reorganisations detected", ["network"])
REORG_DEPTH = Histogram(
    "chainpay_reorg_depth_blocks",
    "Depth of detected reorganisations in blocks",
    ["network"],
    buckets=(1, 2, 3, 5, 8, 12, 20, 50, 100),
)
RPC_REQUESTS = Counter(
    "chainpay_rpc_requests_total", "JSON-RPC requests sent to the node", ["network", "method"]
)
RPC_ERRORS = Counter(
    "chainpay_rpc_errors_total",
    "JSON-RPC failures by method and kind (timeout, connection, http, rpc, range, "
    "response_too_large, unknown_block, missing_state, missing_history, method_not_found, "
    "transaction_refused)",
    ["network", "method", "kind"],
)
RPC_SECONDS = Histogram(
    "chainpay_rpc_duration_seconds",
    "JSON-RPC round trip time",
    ["network", "method"],
    buckets=_LATENCY,
)
WS_CONNECTED = Gauge(
    "chainpay_websocket_connected", "1 while the node websocket subscription is up", ["network"]
)
WS_RECONNECTS = Counter(
    "chainpay_websocket_reconnects_total", "Websocket reconnections to the node", ["network"]
)

# --- matcher -------------------------------------------------------------------------------
ISSUED_ADDRESSES = Gauge("chainpay_issued_addresses", "Deposit addresses issued and watched")
BLOOM_FILL = Gauge(
    "chainpay_bloom_fill_ratio", "Issued addresses over the bloom filter's designed capacity"
)
BLOOM_FALSE_POSITIVES = Counter(
    "chainpay_bloom_false_positives_total", "Bloom hits that the exact set rejected"
)

# --- invoices --------------------------------------------------------------------------------
INVOICES_CREATED = Counter(
    "chainpay_invoices_created_total", "Invoices created", ["network", "asset"]
)
INVOICE_TRANSITIONS = Counter(
    "chainpay_invoice_transitions_total",
    "Invoice status changes by new status",
    ["network", "status"],
)
REORG_FLAGS = Counter(
    "chainpay_invoice_reorg_flags_total",
    "Paid invoices touched by a reorg deeper than the confirmation depth",
    ["network"],
)

# --- webhooks ---------------------------------------------------------------------------------
WEBHOOK_DELIVERIES = Counter(
    "chainpay_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (delivered, retrying, failed)",
    ["outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "chainpay_webhook_delivery_duration_seconds",
    "Webhook POST round trip time",
    buckets=_LATENCY,
)
WEBHOOK_DUE = Gauge("chainpay_webhook_due_deliveries", "Deliveries due now or overdue")
WEBHOOK_OLDEST_AGE = Gauge(
    "chainpay_webhook_oldest_undelivered_age_seconds",
    "Age of the oldest event not yet delivered to an enabled endpoint",
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "chainpay_webhook_endpoints_disabled_total", "Endpoints disabled after failing for days"
)
HOOK_CALLS = Counter(
    "chainpay_hook_calls_total", "In-process on_event hook calls by outcome", ["outcome"]
)

# --- API ---------------------------------------------------------------------------------------
API_REQUESTS = Counter(
    "chainpay_api_requests_total",
    "HTTP requests by route, method and status",
    ["route", "method", "status"],
)
API_SECONDS = Histogram(
    "chainpay_api_request_duration_seconds",
    "HTTP request latency by route",
    ["route", "method"],
    buckets=_LATENCY,
)

# --- DuckDB ------------------------------------------------------------------------------------
DB_COMMIT_SECONDS = Histogram(
    "chainpay_db_commit_duration_seconds",
    "Time of one DuckDB write transaction by kind (api, block, webhooks, fanout, expiry, prune, "
    "checkpoint; mixed for a group commit of several kinds)",
    ["kind"],
    buckets=_LATENCY,
)
DB_BATCH_SIZE = Histogram(
    "chainpay_db_batch_size",
    "Operations grouped into one DuckDB transaction",
    ["kind"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
DB_WRITABLE = Gauge(
    "chainpay_db_writable",
    "1 while the database commits; 0 after a failed commit (disk full, read-only, invalidated)",
)
DB_REOPENS = Counter(
    "chainpay_db_reopens_total", "Times the database was reopened after DuckDB invalidated it"
)
DB_STORAGE_FAILURES = Counter(
    "chainpay_db_storage_failures_total",
    "Write transactions that failed for the storage's sake (I/O, disk full, invalidated)",
)
DB_CHECKPOINTS_SKIPPED = Counter(
    "chainpay_db_checkpoints_skipped_total",
    "Checkpoints in a lull not run or failed, by reason",
    ["reason"],
)
DB_WRITE_TIMEOUTS = Counter(
    "chainpay_db_write_timeouts_total",
    "Writes whose caller stopped waiting for the commit (answered 503); the write may still land",
)
DB_LISTENING = Gauge(
    "chainpay_db_listening",
    "1 while this replica listens for other replicas' commits (PostgreSQL LISTEN/NOTIFY)",
)
DB_REMOTE_COMMITS = Counter(
    "chainpay_db_remote_commits_total",
    "Wake-ups from commits heard through the database (PostgreSQL NOTIFY), by kind; every kind "
    "once after each (re)connect",
    ["kind"],
)

# --- node behaviour (indexer/chain) -------------------------------------------------------------
RPC_BATCH_LIMIT = Gauge(
    "chainpay_rpc_batch_limit",
    "Requests the next JSON-RPC batch may carry; shrinks when the node caps a batch",
    ["network"],
)
STATE_MISSING_BLOCKS = Counter(
    "chainpay_state_missing_blocks_total",
    "Blocks processed while the node lacked their state (pruned): internal native transfers "
    "in them are found later by balance reconciliation",
    ["network"],
)
STATE_MISSING = Gauge(
    "chainpay_state_missing",
    "1 while the tail processes blocks whose state the node has pruned (a degraded window)",
    ["network"],
)
RECONCILED_CREDITS = Counter(
    "chainpay_reconciled_credits_total",
    "Native coin credited from a balance reconciliation instead of a transaction or trace; "
    "each is flagged for review",
    ["network"],
)
TRACER_UNSUPPORTED = Gauge(
    "chainpay_tracer_unsupported",
    "1 while the node answers method-not-found for a tracer (re-probed every 10 minutes)",
    ["network", "tracer"],
)
EMPTY_LOGS_REFETCHED = Counter(
    "chainpay_empty_logs_refetched_total",
    "Blocks whose logsBloom said a watched Transfer may be there but eth_getLogs answered "
    "none, by outcome (found on retry, still empty)",
    ["network", "outcome"],
)
TRANSFERS_WITHOUT_PAYMENT = Gauge(
    "chainpay_transfers_without_payment",
    "Stored transfers to an issued address of the network with no payment row (must be 0)",
    ["network"],
)

# Price feeds (fiat-priced invoices, docs/pricing.md): per network and pair.
PRICE_FEED_UPDATED = Gauge(
    "chainpay_price_feed_updated_timestamp_seconds",
    "The feed's updatedAt (unix seconds) at the last successful read",
    ["network", "pair"],
)
PRICE_FEED_AGE = Gauge(
    "chainpay_price_feed_age_seconds",
    "Seconds between the feed's updatedAt and the last successful read",
    ["network", "pair"],
)
PRICE_FEED_STALE_AFTER = Gauge(
    "chainpay_price_feed_stale_after_seconds",
    "Age beyond which the feed's answer is refused: its heartbeat plus the margin",
    ["network", "pair"],
)
PRICE_FEED_ERRORS = Counter(
    "chainpay_price_feed_errors_total",
    "Feed reads that failed (reverted, not an aggregator, node error)",
    ["network", "pair"],
)
PRICE_REFUSALS = Counter(
    "chainpay_price_refusals_total",
    "Fiat-priced invoices refused with 503 price_unavailable, by reason",
    ["network", "reason"],
)
LEASE_HELD = Gauge(
    "chainpay_lease_held",
    "1 while this process holds the lease (tail:<network>, dispatcher, expirer, ...)",
    ["lease"],
)
NETWORK_LEADER = Gauge(
    "chainpay_network_leader",
    "1 while this process tails the network (holds its lease); summed over replicas, 1",
    ["network"],
)
BLOCK_TIME = Gauge(
    "chainpay_block_time_seconds",
    "The network's configured block pace (`block_time`): alerts scale their thresholds by it",
    ["network"],
)

# --- the sweeper: chainpay sending sweeps with its gas key (indexer/workers/sweeper.py) ----------
GAS_KEY_BALANCE = Gauge(
    "chainpay_gas_key_balance_wei",
    "Native balance of the gas key that pays for sweeps, in wei (a float: exact below 2^53)",
    ["network", "address"],
)
SWEEPS_SENT = Counter(
    "chainpay_sweeps_sent_total", "Sweep transactions the sweeper signed and sent", ["network"]
)
SWEEP_GAS_SPENT = Counter(
    "chainpay_sweep_gas_spent_wei_total",
    "Gas paid by the gas key for mined sweeps (gasUsed x effectiveGasPrice), in wei as a float",
    ["network"],
)
SWEEPS_REPLACED = Counter(
    "chainpay_sweeps_replaced_total",
    "Sweeps sent at the nonce of a stuck transaction of the gas key, with higher fees",
    ["network"],
)
GAS_KEY_PENDING_SINCE = Gauge(
    "chainpay_gas_key_pending_since_timestamp_seconds",
    "Unix time since when the gas key has had a transaction pending at its current nonce, as "
    "far as this process knows (0: none)",
    ["network"],
)
SWEEPS_SKIPPED = Counter(
    "chainpay_sweeps_skipped_total",
    "Planned sweep batches not sent, by reason (below_multiple, key_busy, gas_key_low); "
    "key_busy: rounds waiting on the gas key's pending transaction",
    ["network", "reason"],
)
SWEEP_ASSET_UNPRICED = Gauge(
    "chainpay_sweep_asset_unpriced",
    "1 while a token has no usable price to weigh against gas: not swept automatically",
    ["network", "asset"],
)
SWEEPER_ERRORS = Counter(
    "chainpay_sweeper_errors_total", "Sweeper ticks that failed (node, store, revert)", ["network"]
)
SWEEPER_LAST_ERROR = Gauge(
    "chainpay_sweeper_last_error_timestamp_seconds",
    "Unix time of the sweeper's last failure on the network (0: none since start)",
    ["network"],
)
SWEEPER_TICKS = Counter(
    "chainpay_sweeper_ticks_total", "Sweeper rounds completed (planned, decided, sent)", ["network"]
)

# Forwarder stores' sweeps (docs/collecting-funds.md): per network and asset, in asset units.
UNSWEPT_AMOUNT = Gauge(
    "chainpay_unswept_amount",
    "Value confirmed payments credited to forwarder deposit addresses and no sweep has moved "
    "to the treasury yet, in asset units (e.g. 12.5 USDT); a float, as Prometheus keeps "
    "samples: the books are exact integers, `chainpay sweep` prints exact amounts",
    ["network", "asset"],
)
UNSWEPT_ALERT_THRESHOLD = Gauge(
    "chainpay_unswept_alert_threshold",
    "[sweep] alert_above for the asset, in asset units: ChainpayUnsweptValueHigh fires while "
    "chainpay_unswept_amount stays above it",
    ["network", "asset"],
)
