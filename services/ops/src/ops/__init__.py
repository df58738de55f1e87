"""Emporium's operations service: the dead letters of every service, listed and replayed."""
