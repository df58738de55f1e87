"""``python -m bench``: run every benchmark case and print the tables."""

from bench.run import main

raise SystemExit(main())
