"""Consumers of integration events: each turns one event into one use case."""
