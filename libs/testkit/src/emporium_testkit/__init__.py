"""Helpers for Emporium's tests: real servers, isolated per xdist worker."""
