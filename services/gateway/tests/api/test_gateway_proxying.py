"""Routing and forwarding: what reaches a service, and what comes back."""

from __future__ import annotations

import re

from gateway_testkit import CLIENT_IP, Gateway, GatewayFactory, TestUpstream, Tokens
from opentelemetry.trace import SpanKind

from emporium_testkit.tracing import span_recorder

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "strict-transport-security": "max-age=63072000; includeSubDomains",
}


def assert_security_headers(headers: object) -> None:
    assert hasattr(headers, "get")
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name
    assert headers.get("content-security-policy", "").startswith("default-src 'none'")
    assert headers.get("server") is None


async def test_anonymous_route_is_forwarded_with_body_and_query(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    response = await gateway.client.post(
        "/api/v1/auth/login?next=%2Fhome",
        json={"email": "a@example.com", "password": "pw123456"},
    )

    assert response.status_code == 200
    assert response.json()["path"] == "/api/v1/auth/login"
    [received] = upstream.received
    assert received.method == "POST"
    assert received.query == "next=%2Fhome"
    assert received.body == b'{"email":"a@example.com","password":"pw123456"}'
    assert received.header("content-type") == "application/json"


async def test_request_id_is_echoed_and_forwarded(gateway: Gateway, upstream: TestUpstream) -> None:
    response = await gateway.client.get(
        "/api/v1/products", headers={"X-Request-ID": "client-req.42_a"}
    )

    assert response.headers["x-request-id"] == "client-req.42_a"
    assert upstream.received[0].all("x-request-id") == ["client-req.42_a"]


async def test_request_id_is_generated_when_absent_and_forwarded(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    response = await gateway.client.get("/api/v1/products")

    generated = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert upstream.received[0].all("x-request-id") == [generated]


async def test_invalid_request_id_is_replaced(gateway: Gateway, upstream: TestUpstream) -> None:
    response = await gateway.client.get(
        "/api/v1/products", headers={"X-Request-ID": "bad id with spaces;drop"}
    )

    replaced = response.headers["x-request-id"]
    assert replaced != "bad id with spaces;drop"
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert upstream.received[0].all("x-request-id") == [replaced]


async def test_the_client_trace_is_continued_by_the_gateway_span_that_calls_the_upstream(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    recorder = span_recorder()
    recorder.clear()
    trace_id, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    await gateway.client.post(
        "/api/v1/auth/logout", json={}, headers={"traceparent": f"00-{trace_id}-{client_span}-01"}
    )
    await gateway.client.post("/api/v1/auth/logout", json={}, headers={"traceparent": "garbage"})

    continued = upstream.received[0].all("traceparent")
    started = upstream.received[1].all("traceparent")
    assert len(continued) == 1
    _, sent_trace, sent_parent, _ = continued[0].split("-")
    assert sent_trace == trace_id
    assert sent_parent != client_span  # the gateway's own client span is the parent
    spans = {
        format(s.context.span_id, "016x"): s for s in recorder.get_finished_spans() if s.context
    }
    assert spans[sent_parent].kind == SpanKind.CLIENT
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", started[0])
    assert started[0].split("-")[1] != trace_id


async def test_a_clients_sampled_flag_is_decided_again_and_a_trusted_proxys_is_followed(
    make_gateway: GatewayFactory, upstream: TestUpstream
) -> None:
    # The test process samples every new trace (parentbased_always_on): a
    # client's "not sampled" is overruled, a trusted proxy's is followed.
    recorder = span_recorder()
    trace_id, caller = "5bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    not_sampled = {"traceparent": f"00-{trace_id}-{caller}-00"}
    for client_ip, trusted, recorded in (
        ("203.0.113.9", (), True),
        ("10.1.2.3", ("10.0.0.0/8",), False),
    ):
        recorder.clear()
        upstream.reset()
        async with make_gateway(client_ip=client_ip, trusted_proxies=trusted) as gw:
            await gw.client.post("/api/v1/auth/logout", json={}, headers=not_sampled)
        (forwarded,) = upstream.received[0].all("traceparent")
        assert forwarded.split("-")[1] == trace_id  # the caller's trace either way
        assert forwarded.endswith("-01" if recorded else "-00"), client_ip
        ours = [
            s
            for s in recorder.get_finished_spans()
            if s.context and s.context.trace_id == int(trace_id, 16)
        ]
        assert bool(ours) is recorded, client_ip


async def test_the_trace_context_is_sent_on_once_and_only_a_trusted_proxys_baggage(
    make_gateway: GatewayFactory, upstream: TestUpstream
) -> None:
    trace_id = "6bf92f3577b34da6a3ce929d0e0e4736"
    sent = {"tracestate": "vendor=opaque", "baggage": "role=admin"}
    for client_ip, trusted, flags in (
        ("203.0.113.9", (), "01"),  # recorded: the client-span instrumentation injects
        ("10.1.2.3", ("10.0.0.0/8",), "00"),  # not recorded: the forwarding step adds it
    ):
        upstream.reset()
        headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-{flags}", **sent}
        async with make_gateway(client_ip=client_ip, trusted_proxies=trusted) as gw:
            await gw.client.post("/api/v1/auth/logout", json={}, headers=headers)
        received = upstream.received[0]
        (traceparent,) = received.all("traceparent")
        assert traceparent.split("-")[1] == trace_id
        assert received.all("tracestate") == ["vendor=opaque"], client_ip
        assert received.all("baggage") == (["role=admin"] if trusted else []), client_ip


async def test_proxied_response_keeps_security_headers_and_drops_server(
    gateway: Gateway, tokens: Tokens
) -> None:
    response = await gateway.client.get("/api/v1/users/me", headers=tokens.bearer())

    assert response.status_code == 200
    assert response.headers["x-upstream"] == "yes"
    assert_security_headers(response.headers)
    # hop-by-hop by declaration in the upstream's Connection header
    assert "x-private" not in response.headers


async def test_error_responses_carry_security_headers_and_no_server(gateway: Gateway) -> None:
    response = await gateway.client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert_security_headers(response.headers)


async def test_unknown_route_is_404_problem_and_not_forwarded(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    response = await gateway.client.get("/internal/secret")

    assert response.status_code == 404
    body = response.json()
    assert body["status"] == 404
    assert body["request_id"] == response.headers["x-request-id"]
    assert upstream.received == []


async def test_known_path_with_other_method_is_405_with_allow(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    response = await gateway.client.delete("/api/v1/users/me")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, PATCH"
    assert upstream.received == []


async def test_head_is_the_get_without_content_with_the_gets_access_rule(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens
) -> None:
    anonymous = await gateway.client.head("/api/v1/users/me")
    head = await gateway.client.head("/api/v1/users/me", headers=tokens.bearer())
    got = await gateway.client.get("/api/v1/users/me", headers=tokens.bearer())

    assert anonymous.status_code == 401  # GET's rule: a user
    assert anonymous.content == b""
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"] != "0"
    assert "ratelimit-remaining" in head.headers
    assert [request.method for request in upstream.received] == ["GET", "GET"]


async def test_hop_by_hop_and_internal_headers_from_client_are_stripped(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens
) -> None:
    await gateway.client.get(
        "/api/v1/products",
        headers={
            "X-Emporium-User-Id": "00000000-0000-0000-0000-000000000001",
            "X-Emporium-Permissions": "users:admin",
            "Connection": "x-secret",
            "X-Secret": "hop",
            "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        },
    )

    [received] = upstream.received
    names = {name for name, _ in received.headers}
    assert not any(name.startswith("x-emporium-") for name in names)
    assert "x-secret" not in names
    assert "proxy-authorization" not in names


async def test_verified_identity_is_added_after_authentication(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens
) -> None:
    import uuid

    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    headers = tokens.bearer(user_id=user_id, session_id=session_id, permissions=["catalog:write"])
    forged = {"X-Emporium-User-Id": str(uuid.uuid4())}

    response = await gateway.client.get("/api/v1/users/me", headers={**headers, **forged})

    assert response.status_code == 200
    [received] = upstream.received
    assert received.all("x-emporium-user-id") == [str(user_id)]
    assert received.all("x-emporium-session-id") == [str(session_id)]
    assert received.all("x-emporium-permissions") == ["catalog:write"]
    assert received.all("authorization") == [headers["Authorization"]]


async def test_forwarded_for_from_untrusted_peer_is_ignored(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    await gateway.client.get("/api/v1/products", headers={"X-Forwarded-For": "198.51.100.9"})

    assert upstream.received[0].all("x-forwarded-for") == [CLIENT_IP]


async def test_forwarded_for_from_trusted_proxy_is_honoured(
    make_gateway: GatewayFactory, upstream: TestUpstream
) -> None:
    async with make_gateway(client_ip="10.1.2.3", trusted_proxies=("10.0.0.0/8",)) as gw:
        await gw.client.get(
            "/api/v1/products", headers={"X-Forwarded-For": "198.51.100.9, 10.9.9.9"}
        )

    assert upstream.received[0].all("x-forwarded-for") == ["198.51.100.9"]
