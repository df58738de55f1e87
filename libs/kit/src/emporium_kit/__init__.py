"""Emporium's shared infrastructure kit.

Infrastructure only: settings, logging, request ids, problem documents, health,
metrics, database sessions, email and reliable messaging. Never business types.
"""
