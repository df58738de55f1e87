"""Write each service's OpenAPI document to services/<name>/openapi.json.

python scripts/openapi.py          # regenerate
python scripts/openapi.py --check  # fail when a committed document drifted from the code
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def users_spec() -> dict[str, Any]:
    from users.main import create_app

    spec: dict[str, Any] = create_app().openapi()
    return spec


def ops_spec() -> dict[str, Any]:
    from ops.main import create_app

    spec: dict[str, Any] = create_app().openapi()
    return spec


def catalog_spec() -> dict[str, Any]:
    from catalog.main import create_app

    spec: dict[str, Any] = create_app().openapi()
    return spec


SERVICES: dict[str, Callable[[], dict[str, Any]]] = {
    "users": users_spec,
    "ops": ops_spec,
    "catalog": catalog_spec,
}


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    check = "--check" in sys.argv[1:]
    drifted = []
    for name, build in SERVICES.items():
        target = ROOT / "services" / name / "openapi.json"
        text = render(build())
        if check:
            if not target.exists() or target.read_text() != text:
                drifted.append(str(target.relative_to(ROOT)))
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if drifted:
        print(f"OpenAPI drift in {', '.join(drifted)}: run `make openapi` and commit.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
