"""use_cases of the catalogue service."""
