"""Emporium catalogue service: categories, products, stock, search."""
