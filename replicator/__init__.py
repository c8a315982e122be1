"""replicator: keep a development PostgreSQL faithful to a production master, read-only on the master."""

__version__ = "0.1.0"
