"""entrypoints of the catalogue service."""
