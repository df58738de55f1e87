"""domain of the catalogue service."""
