"""One OpenAPI document for the whole public API, merged from the services' own.

Each service's ``/openapi.json`` is fetched at start and every
``GATEWAY_OPENAPI_REFRESH_SECONDS``; a service that does not answer keeps its
last document. The merge keeps only the operations in the route table (the
services may have internal routes), matching path templates by shape so
``/users/{id}`` in the table finds ``/users/{user_id}`` in the service. Security
comes from the route table, not from the services: a ``bearerAuth`` scheme,
and per operation either none (open) or a bearer token, with the permission
named. Component schemas are merged when identical and prefixed with the
service name when two services mean different things by one name; components
no public operation refers to are dropped. A route whose service has never
published a document still appears, as a stub, so the document always covers
every public route.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
import structlog

from emporium_kit.problems import PROBLEM_JSON_SCHEMA
from gateway.proxy import Upstream
from gateway.routes import Route, RouteTable

log = structlog.get_logger(__name__)

JsonObject = dict[str, Any]

BEARER_SCHEME = "bearerAuth"
PROBLEM_SCHEMA = "Problem"
_PARAM = re.compile(r"\{[^}/]+\}")
_REF_PREFIX = "#/components/"

_PROBLEM: JsonObject = PROBLEM_JSON_SCHEMA


def _problem_response(description: str) -> JsonObject:
    return {
        "description": description,
        "content": {
            "application/problem+json": {
                "schema": {"$ref": f"{_REF_PREFIX}schemas/{PROBLEM_SCHEMA}"}
            }
        },
    }


def path_shape(path: str) -> str:
    return _PARAM.sub("{}", path)


def rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                renames.get(value, value)
                if key == "$ref" and isinstance(value, str)
                else rewrite_refs(value, renames)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [rewrite_refs(item, renames) for item in node]
    return node


def _refs_in(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs_in(item)


class ComponentMerger:
    """Collects components from several documents without collisions."""

    def __init__(self) -> None:
        self.components: dict[str, dict[str, Any]] = {}

    def absorb(self, owner: str, components: Mapping[str, Any]) -> dict[str, str]:
        """Adds ``components``; returns the ref renames to apply to the owner's operations."""
        prefix = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]", owner))
        renames: dict[str, str] = {}
        changed = True
        while changed:  # a rename can make a referring schema differ too
            changed = False
            for kind, entries in components.items():
                if kind == "securitySchemes" or not isinstance(entries, dict):
                    continue
                existing = self.components.get(kind, {})
                for name, value in entries.items():
                    ref = f"{_REF_PREFIX}{kind}/{name}"
                    if ref in renames or name not in existing:
                        continue
                    if existing[name] != rewrite_refs(value, renames):
                        renames[ref] = f"{_REF_PREFIX}{kind}/{self._free_name(kind, prefix + name)}"
                        changed = True
        for kind, entries in components.items():
            if kind == "securitySchemes" or not isinstance(entries, dict):
                continue
            target = self.components.setdefault(kind, {})
            for name, value in entries.items():
                ref = f"{_REF_PREFIX}{kind}/{name}"
                final = renames.get(ref, ref).rsplit("/", 1)[1]
                target[final] = rewrite_refs(value, renames)
        return renames

    def _free_name(self, kind: str, candidate: str) -> str:
        taken = self.components.get(kind, {})
        name, counter = candidate, 2
        while name in taken:
            name, counter = f"{candidate}{counter}", counter + 1
        return name

    def referenced_from(self, roots: Any) -> dict[str, dict[str, Any]]:
        """Only the components reachable from ``roots`` (the paths)."""
        seen: set[str] = set()
        pending = list(_refs_in(roots))
        while pending:
            ref = pending.pop()
            if ref in seen or not ref.startswith(_REF_PREFIX):
                continue
            seen.add(ref)
            kind, _, name = ref[len(_REF_PREFIX) :].partition("/")
            value = self.components.get(kind, {}).get(name)
            if value is not None:
                pending.extend(_refs_in(value))
        kept: dict[str, dict[str, Any]] = {}
        for ref in sorted(seen):
            kind, _, name = ref[len(_REF_PREFIX) :].partition("/")
            if name in self.components.get(kind, {}):
                kept.setdefault(kind, {})[name] = self.components[kind][name]
        return kept


def _stub_operation(route: Route, method: str) -> JsonObject:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", route.path).strip("_")
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{([^}/]+)\}", route.path)
    ]
    operation: JsonObject = {
        "tags": [route.service],
        "summary": f"{method} {route.path}",
        "description": (
            f"Served by the {route.service} service, which has not published its API "
            "description to the gateway yet."
        ),
        "operationId": f"{route.service}_{method.lower()}_{slug}",
        "responses": {"default": {"description": "See the service's documentation."}},
    }
    if parameters:
        operation["parameters"] = parameters
    return operation


def _secure(operation: JsonObject, route: Route, method: str) -> JsonObject:
    access = route.access[method]
    responses = operation.setdefault("responses", {})
    if access.authenticated:
        operation["security"] = [{BEARER_SCHEME: []}]
        responses.setdefault(
            "401", _problem_response("Missing, invalid, expired or revoked token.")
        )
    else:
        operation["security"] = []
    if access.permission:
        operation["x-required-permission"] = access.permission
        responses.setdefault("403", _problem_response(f"The token lacks `{access.permission}`."))
    note = f"Access: {access.describe()}."
    description = operation.get("description")
    operation["description"] = f"{description}\n\n{note}" if description else note
    responses.setdefault("429", _problem_response("Rate limited; see `Retry-After`."))
    responses.setdefault("503", _problem_response("The service behind this route is down."))
    return operation


def merge_openapi(
    *,
    title: str,
    version: str,
    description: str,
    gateway_spec: Mapping[str, Any],
    service_specs: Mapping[str, Mapping[str, Any]],
    routes: Iterable[Route],
) -> JsonObject:
    merger = ComponentMerger()
    merger.absorb("gateway", {"schemas": {PROBLEM_SCHEMA: _PROBLEM}})
    gateway_renames = merger.absorb("gateway", gateway_spec.get("components", {}))
    paths: JsonObject = {
        path: rewrite_refs(item, gateway_renames)
        for path, item in gateway_spec.get("paths", {}).items()
    }
    operation_ids: set[str] = {
        op["operationId"]
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }

    by_service: dict[str, list[Route]] = {}
    for route in routes:
        by_service.setdefault(route.service, []).append(route)

    for service in sorted(by_service):
        spec = service_specs.get(service, {})
        renames = merger.absorb(service, spec.get("components", {}))
        index = {path_shape(path): (path, item) for path, item in spec.get("paths", {}).items()}
        for route in by_service[service]:
            found = index.get(path_shape(route.path))
            out_path = found[0] if found else route.path
            item = paths.setdefault(out_path, {})
            if found and "parameters" in found[1]:
                item["parameters"] = rewrite_refs(found[1]["parameters"], renames)
            for method in sorted(route.access):
                source = found[1].get(method.lower()) if found else None
                operation = (
                    rewrite_refs(copy.deepcopy(source), renames)
                    if isinstance(source, dict)
                    else _stub_operation(route, method)
                )
                op_id = operation.get("operationId")
                if isinstance(op_id, str):
                    if op_id in operation_ids:
                        op_id = f"{service}_{op_id}"
                        operation["operationId"] = op_id
                    operation_ids.add(op_id)
                item[method.lower()] = _secure(operation, route, method)

    components: JsonObject = merger.referenced_from(paths)
    components["securitySchemes"] = {
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from POST /api/v1/auth/login.",
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": dict(sorted(paths.items())),
        "components": components,
    }


class OpenApiCatalog:
    """Keeps the services' last documents and the merged result, ready to serve."""

    def __init__(
        self,
        upstreams: Mapping[str, Upstream],
        table: RouteTable,
        *,
        gateway_spec: Callable[[], Mapping[str, Any]],
        title: str,
        version: str,
        description: str,
        fetch_timeout_seconds: float,
    ) -> None:
        self._upstreams = upstreams
        self._table = table
        self._gateway_spec = gateway_spec
        self._title = title
        self._version = version
        self._description = description
        self._timeout = fetch_timeout_seconds
        self._specs: dict[str, Mapping[str, Any]] = {}
        self._document: bytes | None = None

    async def refresh(self) -> None:
        services = sorted(self._table.services())
        results = await asyncio.gather(*(self._fetch(name) for name in services))
        for name, spec in zip(services, results, strict=True):
            if spec is not None:
                self._specs[name] = spec
        self._document = orjson.dumps(self.merged())

    async def _fetch(self, service: str) -> Mapping[str, Any] | None:
        try:
            response = await self._upstreams[service].client.get(
                "/openapi.json", timeout=self._timeout
            )
            response.raise_for_status()
            spec = response.json()
        except Exception as exc:  # any failure keeps the last document
            log.info("openapi_fetch_failed", upstream=service, error=repr(exc))
            return None
        if not isinstance(spec, dict) or not isinstance(spec.get("paths"), dict):
            log.warning("openapi_document_invalid", upstream=service)
            return None
        return spec

    def merged(self) -> JsonObject:
        return merge_openapi(
            title=self._title,
            version=self._version,
            description=self._description,
            gateway_spec=self._gateway_spec(),
            service_specs=self._specs,
            routes=self._table.routes,
        )

    def document(self) -> bytes:
        if self._document is None:
            self._document = orjson.dumps(self.merged())
        return self._document

    async def refresh_forever(self, interval_seconds: float) -> None:
        """Refreshes every ``interval_seconds``, whatever the last refresh did.

        A schedule, not a retry, hence no tenacity: a refresh that worked is
        repeated like one that failed, and a service that did not answer already
        keeps its last document (:meth:`_fetch`), so there is nothing to retry
        sooner or to back off from.
        """
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.refresh()
            except Exception:
                log.exception("openapi_refresh_failed")
