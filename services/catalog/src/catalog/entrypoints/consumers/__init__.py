"""Event consumers of the catalogue: the order events that move stock."""
