"""Pure parts of the gateway: route matching, client IPs, paths, caching keys, OpenAPI merge."""

from __future__ import annotations

from typing import Any

import pytest

from emporium_kit.client_ip import ClientIpResolver, rate_limit_key
from gateway.cache import CachedResponse, cache_key_suffix, etag_matches, strong_etag
from gateway.edge import path_problem
from gateway.openapi_merge import merge_openapi
from gateway.routes import ROUTES, USER, Route, default_route_table


def test_literal_segments_win_over_parameters() -> None:
    table = default_route_table()

    me = table.match("/api/v1/users/me")
    roles = table.match("/api/v1/users/123/roles")

    assert me is not None
    assert me.path == "/api/v1/users/me"
    assert roles is not None
    assert roles.path == "/api/v1/users/{id}/roles"


@pytest.mark.parametrize(
    "path", ["/api/v1/unknown", "/api/v1/products/", "/api/v1/products/1/2", "/", "/api"]
)
def test_unknown_paths_match_nothing(path: str) -> None:
    assert default_route_table().match(path) is None


@pytest.mark.parametrize("length", [8, 2000])  # a path kept once matched, and one too long to keep
def test_a_path_matches_the_same_route_every_time(length: int) -> None:
    table = default_route_table()
    path = "/api/v1/products/" + "7" * length

    first, again = table.match(path), table.match(path)

    assert first is not None
    assert first.path == "/api/v1/products/{id}"
    assert again is first
    assert table.match(path + "/") is None


def test_every_contract_route_has_a_service_and_methods() -> None:
    paths = {route.path for route in ROUTES}

    assert "/api/v1/payments/webhook" in paths
    assert "/.well-known/jwks.json" in paths
    assert all(route.service in {"users", "catalog", "orders", "ops"} for route in ROUTES)
    assert all(route.methods for route in ROUTES)
    assert len(paths) == len(ROUTES)


def test_allow_header_lists_methods_sorted() -> None:
    route = Route("/x", "users", {"PATCH": USER, "GET": USER})
    assert route.allow_header == "GET, HEAD, PATCH"


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.5", ["198.51.100.1"], (), "203.0.113.5"),
        ("203.0.113.5", ["198.51.100.1"], ("10.0.0.0/8",), "203.0.113.5"),
        ("10.0.0.1", ["198.51.100.1"], ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.1", ["1.1.1.1, 198.51.100.1, 10.0.0.7"], ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.1", ["garbage, 10.0.0.7"], ("10.0.0.0/8",), "10.0.0.7"),
        ("10.0.0.1", [], ("10.0.0.0/8",), "10.0.0.1"),
        ("::1", ["2001:db8::1"], ("::1/128",), "2001:db8::1"),
        # Each proxy appended a line of its own: the lines are one list, in order.
        ("10.0.0.1", ["1.1.1.1", "198.51.100.1", "10.0.0.7"], ("10.0.0.0/8",), "198.51.100.1"),
        # A client's own first line cannot hide the address the trusted proxy saw.
        ("10.0.0.1", ["6.6.6.6", "198.51.100.1"], ("10.0.0.0/8",), "198.51.100.1"),
    ],
)
def test_client_ip_believes_only_trusted_proxies(
    peer: str, forwarded: list[str], trusted: tuple[str, ...], expected: str
) -> None:
    assert ClientIpResolver(trusted).resolve(peer, forwarded) == expected


@pytest.mark.parametrize(
    ("client", "key"),
    [
        ("198.51.100.1", "198.51.100.1"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
        ("unknown", "unknown"),
    ],
)
def test_ipv6_clients_are_rate_limited_by_their_64(client: str, key: str) -> None:
    assert rate_limit_key(client) == key


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/api/v1/../x", None),
        ("/api/v1/./x", None),
        ("/api//v1", None),
        ("/api/v1/a/b", b"/api/v1/a%2Fb"),
        ("/api/v1/a\\b", None),
        ("/api/v1/\x00", None),
        ("/api/v1/..", b"/api/v1/%2E%2E"),
    ],
)
def test_path_tricks_are_named(path: str, raw: bytes | None) -> None:
    assert path_problem(path, raw) is not None


@pytest.mark.parametrize("path", ["/", "/api/v1/products", "/api/v1/products/", "/a-b_c.d~e"])
def test_plain_paths_pass(path: str) -> None:
    assert path_problem(path, path.encode()) is None


def test_cache_key_sorts_query_parameters() -> None:
    assert cache_key_suffix("GET", "/p", b"b=2&a=1&a=0") == cache_key_suffix(
        "GET", "/p", b"a=0&a=1&b=2"
    )
    assert cache_key_suffix("GET", "/p", b"a=1") != cache_key_suffix("GET", "/p", b"a=2")


def test_etag_is_strong_and_if_none_match_compares_weakly() -> None:
    etag = strong_etag(b"body")

    assert etag.startswith('"')
    assert not etag.startswith("W/")
    assert etag_matches(etag, etag)
    assert etag_matches(f'"other", W/{etag}', etag)
    assert etag_matches("*", etag)
    assert not etag_matches('"other"', etag)
    assert not etag_matches(None, etag)


def test_cached_response_round_trips() -> None:
    entry = CachedResponse(200, [(b"content-type", b"application/json")], b'{"a":\n1}', '"e"')
    assert CachedResponse.load(entry.dump()) == entry


def _spec(schema_name: str, schema: dict[str, Any], path: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "s", "version": "1"},
        "paths": {
            path: {
                "get": {
                    "operationId": "read",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": f"#/components/schemas/{schema_name}"}
                                }
                            },
                        }
                    },
                }
            },
            "/internal": {"get": {"responses": {"200": {"description": "no"}}}},
        },
        "components": {"schemas": {schema_name: schema}},
    }


def test_merge_prefixes_colliding_schemas_and_keeps_identical_ones() -> None:
    users_item = {"type": "object", "properties": {"email": {"type": "string"}}}
    catalog_item = {"type": "object", "properties": {"sku": {"type": "string"}}}
    routes = [
        Route("/api/v1/users/{id}", "users", {"GET": USER}),
        Route("/api/v1/products/{id}", "catalog", {"GET": USER}),
    ]

    merged = merge_openapi(
        title="t",
        version="1",
        description="d",
        gateway_spec={"paths": {}},
        service_specs={
            "users": _spec("Item", users_item, "/api/v1/users/{user_id}"),
            "catalog": _spec("Item", catalog_item, "/api/v1/products/{product_id}"),
        },
        routes=routes,
    )

    schemas = merged["components"]["schemas"]
    assert schemas["Item"] == catalog_item  # catalog is merged first (sorted)
    assert schemas["UsersItem"] == users_item
    users_op = merged["paths"]["/api/v1/users/{user_id}"]["get"]
    assert users_op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UsersItem"
    }
    assert users_op["operationId"] == "users_read"  # de-duplicated
    assert "/internal" not in merged["paths"]


def test_contract_variables_are_read_with_their_exact_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway.settings import GatewaySettings

    monkeypatch.setenv("GATEWAY_PORT", "9100")
    monkeypatch.setenv("RATE_LIMIT_ANONYMOUS", "5/second")
    monkeypatch.setenv("RATE_LIMIT_USER", "6/second")
    monkeypatch.setenv("RATE_LIMIT_AUTH", "7/hour")
    monkeypatch.setenv("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
    monkeypatch.setenv("GATEWAY_REQUIRED_UPSTREAMS", "users,catalog")

    settings = GatewaySettings()

    assert settings.port == 9100
    assert (settings.rate_limit_anonymous, settings.rate_limit_user, settings.rate_limit_auth) == (
        "5/second",
        "6/second",
        "7/hour",
    )
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.0.2.1")
    assert settings.required_upstreams == ("users", "catalog")
