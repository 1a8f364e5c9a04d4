"""The SQL repositories and their unit of work, shared by both adapters (DuckDB and PostgreSQL).

Written once in DuckDB's dialect; the PostgreSQL adapter translates the few differences
(indexer/store/postgres/dialect.py). They use a connection through indexer.store.sql only.
"""
