"""``python -m bench.catalogue``: the catalogue cases alone (``python -m bench --only catalog``)."""

from bench.catalogue.cases import main

raise SystemExit(main())
