"""The DuckDB adapter of the storage port (indexer.store.port): the embedded default."""
