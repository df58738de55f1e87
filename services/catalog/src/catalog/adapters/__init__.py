"""adapters of the catalogue service."""
