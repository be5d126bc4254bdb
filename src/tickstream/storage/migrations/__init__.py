"""Versioned SQL migrations for the PostgreSQL store (``NNNN_name[.plain|.timescale].sql``)."""
