"""http of the catalogue service."""
