"""Emporium API gateway: the single entry point in front of users, catalog and orders."""
