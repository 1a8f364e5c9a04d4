"""The PostgreSQL adapter of the storage port (indexer.store.port): for several replicas."""
