"""Catalogue benchmarks (issue #14) on seeded data: search latency and read throughput.

.venv/bin/python -m bench --only catalog          # as part of the bench's case list
.venv/bin/python -m bench.catalogue               # the same, alone
.venv/bin/python -m bench.catalogue.plans         # EXPLAIN (ANALYZE, BUFFERS) of each shape
"""
