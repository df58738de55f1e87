"""relay_response: a small declared body goes out whole, anything else as it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from gateway.proxy import WHOLE_BODY_BYTES, UpstreamResponse, relay_response


class FakeResponse:
    """What relay_response reads of an upstream answer, with the body in chunks."""

    def __init__(self, chunks: list[bytes], *, declared: bool) -> None:
        self._chunks = chunks
        self.status_code = 200
        self.raw_headers = [(b"Content-Type", b"application/json")]
        if declared:
            self.raw_headers.append((b"Content-Length", str(sum(map(len, chunks))).encode()))
        self.closed = False

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.raw_headers if k.lower() == name), None)

    async def aread(self) -> bytes:
        return b"".join(self._chunks)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


async def relayed(response: FakeResponse) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await relay_response(cast(UpstreamResponse, response), send)
    assert response.closed
    return sent


async def test_a_small_body_of_declared_length_is_one_message() -> None:
    sent = await relayed(FakeResponse([b'{"a":', b"1}"], declared=True))

    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1] == {"type": "http.response.body", "body": b'{"a":1}', "more_body": False}
    assert (b"content-length", b"7") in sent[0]["headers"]


async def test_an_undeclared_or_large_body_is_streamed_as_it_arrives() -> None:
    big = [b"x" * WHOLE_BODY_BYTES, b"y"]
    for response in (FakeResponse([b"a", b"b"], declared=False), FakeResponse(big, declared=True)):
        chunks = response._chunks
        sent = await relayed(response)

        bodies = [m for m in sent if m["type"] == "http.response.body"]
        assert [m["body"] for m in bodies] == [*chunks, b""]
        assert [m["more_body"] for m in bodies] == [True] * len(chunks) + [False]
