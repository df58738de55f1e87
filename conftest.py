"""Suite-wide test setup.

schemathesis is a pytest plugin, so pytest rewrites the asserts of each of its
modules when it is first imported, and schemathesis imports many of them
lazily, in the middle of a test, after Hypothesis has raised the recursion
limit. CPython 3.11.7 then fails the compilation with "AST constructor recursion
depth mismatch" (a CPython bug fixed in later 3.11 releases). Importing the
package's modules here, before any test runs, takes that compilation out of
the tests.
"""

from __future__ import annotations

import importlib
import pkgutil

import schemathesis

for _module in pkgutil.walk_packages(schemathesis.__path__, "schemathesis."):
    try:
        importlib.import_module(_module.name)
    except ImportError:  # optional integrations whose libraries are not installed
        continue
