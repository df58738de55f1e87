"""db of the catalogue service."""
