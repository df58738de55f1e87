"""A short-lived Redis cache for anonymous reads of the public catalogue.

Keys are ``<prefix>cache:<generation>:<method> <path>?<sorted query>``. The
generation is a counter in Redis: a catalogue event invalidates everything
with one ``INCR`` (old entries are never read again and expire by TTL). A
lookup reads the generation and the entry in one Lua call; the entry is then
stored under the generation that was read *before* the upstream was asked, so a
response fetched while an invalidation happened lands under a dead generation
and is never served. Lookups and stores go through the gateway's turn script
(:mod:`gateway.redis_turn`, ADR 0024): a request's lookup is read in the same
op as its rate limits, and every op of one turn of the event loop (limits,
lookups, stores) is one Redis call. An anonymous read served from Redis makes
one round trip; a missed page's store rides in a later turn's call.

Entries hold the status, a few response headers, a strong ``ETag`` (a hash of
the body) and the body. Only 200 responses are stored.

Misses of one page in one process are collapsed: while a miss is being
fetched, another request for the same page under the same generation waits
for it and is answered with that page (``X-Cache: HIT``), so a page that
expired, or every page after an invalidation, costs the upstream one request
per gateway process, not one per client waiting for it. When the first
request's answer is not a page to store (an error, a ``Vary``, too large, its
client gone), each waiting request asks the upstream itself.

The key is the method, path and query, nothing else, so a cached page must not
depend on anything else a client sends: a cacheable request reaches the
upstream with none of the client's headers (only the gateway's own: request
id, trace context, forwarded-for/proto, and a fixed ``Accept``), and a response
that declares ``Vary`` on anything but ``Accept-Encoding`` (which the gateway
pins to ``identity``) is relayed, never stored. One client's headers can thus
never poison the page served to the next.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import orjson
from cachetools import TTLCache
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from emporium_kit.middleware import first_header
from gateway.authentication import Authentication
from gateway.forwarding import Header, request_target, send_failure, with_rate_limit_headers
from gateway.metrics import CACHE_INVALIDATIONS, CACHE_LOOKUPS, REDIS_DEGRADED
from gateway.proxy import (
    Upstream,
    UpstreamFailure,
    UpstreamResponse,
    relay_response,
    response_headers,
)
from gateway.redis_guard import RedisGuard
from gateway.redis_turn import Counted, RedisTurn, Store
from gateway.routes import Route

# Response headers worth replaying from a cached entry; everything else
# (dates, connection details) is per response.
STORED_HEADERS = frozenset(
    {b"content-type", b"content-encoding", b"content-language", b"vary", b"link"}
)

# The only Vary a stored response may carry: the gateway asks for identity.
_VARY_ALLOWED = frozenset({b"accept-encoding"})


_HITS_LOCAL = CACHE_LOOKUPS.labels("hit_local")
_HITS = CACHE_LOOKUPS.labels("hit")
_MISSES = CACHE_LOOKUPS.labels("miss")
_COLLAPSED = CACHE_LOOKUPS.labels("collapsed")


def is_cacheable(route: Route, method: str, caller: Authentication) -> bool:
    """A GET of a cacheable route by a caller who sent no token (a page for anyone)."""
    return route.cacheable and method == "GET" and not caller.presented


def varies_only_on_what_the_key_holds(vary: bytes | None) -> bool:
    """Whether a response with this ``Vary`` can be stored under a method+path+query key."""
    if vary is None:
        return True
    names = {name.strip().lower() for name in vary.split(b",") if name.strip()}
    return names <= _VARY_ALLOWED


def cache_key_suffix(method: str, path: str, query_string: bytes) -> str:
    query = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    canonical = urlencode(sorted(query))
    return f":{method} {path}?{canonical}"


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison, ``*`` matches anything."""
    if if_none_match is None:
        return False
    candidates = [part.strip() for part in if_none_match.split(",")]
    if "*" in candidates:
        return True
    bare = etag.removeprefix("W/")
    return any(candidate.removeprefix("W/") == bare for candidate in candidates)


@dataclass(frozen=True, slots=True)
class CachedResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: str

    def dump(self) -> bytes:
        meta = {
            "s": self.status,
            "e": self.etag,
            "h": [
                [name.decode("latin-1"), value.decode("latin-1")] for name, value in self.headers
            ],
        }
        return orjson.dumps(meta) + b"\n" + self.body

    @classmethod
    def load(cls, blob: bytes) -> CachedResponse:
        meta_blob, _, body = blob.partition(b"\n")
        meta = orjson.loads(meta_blob)
        return cls(
            status=int(meta["s"]),
            etag=str(meta["e"]),
            headers=[
                (name.encode("latin-1"), value.encode("latin-1")) for name, value in meta["h"]
            ],
            body=body,
        )


def _loaded(blob: bytes) -> CachedResponse | None:
    """A stored entry, or None (a miss) for a value that is not one (written by
    something else under the cache's keys): a page is fetched again, never a 500."""
    try:
        return CachedResponse.load(blob)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True, slots=True)
class Lookup:
    suffix: str
    """The entry's key after the generation: method, path and sorted query."""
    generation: str | None
    """None when Redis could not be asked: nothing may be stored then."""
    entry: CachedResponse | None
    epoch: int = 0
    """The in-process tier's invalidation count when the lookup was made."""
    local: bool = False
    """The entry came from the in-process tier (no Redis round trip)."""


@dataclass(frozen=True, slots=True)
class PendingLookup:
    """A lookup that needs Redis: its entry is read with the request's rate limits
    (:meth:`gateway.ratelimit.RateLimiter.check`), then :meth:`ResponseCache.finish`."""

    suffix: str
    epoch: int


class ResponseCache:
    def __init__(
        self,
        redis: Redis,
        turn: RedisTurn,
        redis_guard: RedisGuard,
        *,
        ttl_seconds: int,
        max_body_bytes: int,
        local_entries: int = 1024,
        local_ttl_seconds: float = 5.0,
    ) -> None:
        self._redis = redis
        self._turn = turn
        self._guard = redis_guard
        self._generation_key = turn.generation_key
        self.ttl_seconds = ttl_seconds
        self.max_body_bytes = max_body_bytes
        # The hot tier: this process's most recent pages, for a few seconds.
        # Every replica hears every catalogue event and empties its own tier
        # (see gateway.cache_invalidation); the epoch keeps a page fetched
        # while an invalidation happened out of it.
        self._local: TTLCache[str, tuple[str, CachedResponse]] = TTLCache(
            maxsize=max(1, local_entries), ttl=min(local_ttl_seconds, ttl_seconds)
        )
        self._local_enabled = local_entries > 0 and local_ttl_seconds > 0
        self._epoch = 0

    def start(self, suffix: str) -> Lookup | PendingLookup:
        """The lookup, when it needs no Redis call (the in-process tier has the page,
        or Redis is believed down); else what :meth:`finish` completes."""
        if not self._guard.available:
            REDIS_DEGRADED.labels("cache").inc()
            return Lookup(suffix, None, None)
        hot = self._local.get(suffix) if self._local_enabled else None
        if hot is not None:
            return Lookup(suffix, hot[0], hot[1], self._epoch, local=True)
        return PendingLookup(suffix, self._epoch)

    def finish(self, pending: PendingLookup, counted: Counted | None) -> Lookup:
        """The lookup from what the turn script read (None: Redis could not be asked)."""
        if counted is None:
            REDIS_DEGRADED.labels("cache").inc()
            return Lookup(pending.suffix, None, None)
        entry = _loaded(counted.entry) if counted.entry else None
        if entry is not None:
            self._keep_local(pending.epoch, pending.suffix, counted.generation, entry)
        return Lookup(pending.suffix, counted.generation, entry, pending.epoch)

    def _keep_local(self, epoch: int, suffix: str, generation: str, entry: CachedResponse) -> None:
        if self._local_enabled and epoch == self._epoch:
            self._local[suffix] = (generation, entry)

    async def store(self, lookup: Lookup, response: CachedResponse) -> None:
        generation = lookup.generation
        if generation is None or not self._guard.available:
            return
        self._keep_local(lookup.epoch, lookup.suffix, generation, response)
        key = f"{self._turn.entry_prefix}{generation}{lookup.suffix}"
        try:
            await self._turn.store(Store(key, response.dump(), self.ttl_seconds))
        except (RedisError, OSError) as exc:
            self._guard.failed("cache", exc)

    def forget_local(self) -> None:
        """Empties this process's hot tier (every replica does so on each catalogue event)."""
        self._epoch += 1
        self._local.clear()

    async def invalidate(self) -> None:
        self.forget_local()
        await self._redis.incr(self._generation_key)
        CACHE_INVALIDATIONS.inc()

    async def generation(self) -> int:
        value = await self._redis.get(self._generation_key)
        return int(value) if value is not None else 0


async def _read_bounded(response: UpstreamResponse, max_body_bytes: int) -> bytes | None:
    """The whole body when it fits the cache; None (nothing consumed) when it cannot."""
    length = response.header(b"content-length")
    if length is None or not length.isdigit() or int(length) > max_body_bytes:
        return None
    try:
        return await response.aread()
    finally:
        await response.aclose()


@dataclass(frozen=True, slots=True)
class _Miss:
    """A request that the cache could not answer: what its answer needs (built on a miss only)."""

    scope: Scope
    receive: Receive
    send: Send
    if_none_match: str | None
    rate_limit_headers: list[Header]


class CachedPages:
    """Serves a cacheable request: from the cache, or from the upstream and then stored.

    ``X-Cache`` says which; ``ETag`` and ``If-None-Match`` give 304s. Only a
    200 whose body fits and that varies on nothing the key does not hold is
    stored, under the generation read before the upstream was asked.
    """

    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache
        self._cache_control = f"public, max-age={cache.ttl_seconds}".encode()
        # The misses being fetched in this process, by what they were looked up
        # under: a miss of the same page meanwhile waits for that page.
        self._in_flight: dict[tuple[str, int, str], asyncio.Future[CachedResponse | None]] = {}

    def start(self, scope: Scope) -> Lookup | PendingLookup:
        """The request's lookup, or what the rate limiter reads with its limits
        (``entry_suffix``) before :meth:`serve` completes it."""
        return self._cache.start(cache_key_suffix("GET", scope["path"], scope["query_string"]))

    async def serve(
        self,
        upstream: Upstream,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        started: Lookup | PendingLookup,
        counted: Counted | None,
        headers: Callable[[], list[Header]],
        rate_limit_headers: list[Header],
    ) -> None:
        """``started``: what :meth:`start` gave; ``counted``: what the rate limiter's
        call read for it (None when the limits were counted in process).
        ``headers``: builds the upstream request's headers, called only on a miss.
        ``rate_limit_headers``: the gateway's ``RateLimit-*`` lines for this answer
        (written into a hit's start line directly; a miss relays them as every
        forwarded answer does, see :func:`~gateway.forwarding.with_rate_limit_headers`)."""
        if_none_match = first_header(scope, b"if-none-match")
        lookup = started if isinstance(started, Lookup) else self._cache.finish(started, counted)
        if lookup.entry is not None:
            (_HITS_LOCAL if lookup.local else _HITS).inc()
            await self._send_entry(
                lookup.entry, b"HIT", if_none_match, send, extra=rate_limit_headers
            )
            return
        flight: asyncio.Future[CachedResponse | None] | None = None
        key = (lookup.generation or "", lookup.epoch, lookup.suffix)
        if lookup.generation is not None:
            leader = self._in_flight.get(key)
            if leader is None:
                flight = self._in_flight[key] = asyncio.get_running_loop().create_future()
            else:
                # Shielded: a follower whose client leaves must not cancel the page.
                shared = await asyncio.shield(leader)
                if shared is not None:
                    _COLLAPSED.inc()
                    await self._send_entry(
                        shared, b"HIT", if_none_match, send, extra=rate_limit_headers
                    )
                    return
                # The first request's answer was not a page to share: ask ourselves.
        miss = _Miss(scope, receive, send, if_none_match, rate_limit_headers)
        try:
            await self._fetch(upstream, miss, lookup, flight, headers)
        finally:
            if flight is not None:
                if not flight.done():  # failed or cancelled: followers ask themselves
                    flight.set_result(None)
                del self._in_flight[key]

    async def _fetch(
        self,
        upstream: Upstream,
        miss: _Miss,
        lookup: Lookup,
        flight: asyncio.Future[CachedResponse | None] | None,
        headers: Callable[[], list[Header]],
    ) -> None:
        """A miss: the upstream asked, its page answered and then stored; ``flight``
        (when this request leads the misses of its page) given the page at once."""
        _MISSES.inc()
        send = with_rate_limit_headers(miss.send, miss.rate_limit_headers)
        try:
            response = await upstream.send("GET", request_target(miss.scope), headers(), None)
        except UpstreamFailure as failure:
            await send_failure(failure, miss.scope, miss.receive, send)
            return
        storable = (
            response.status_code == 200
            and lookup.generation is not None
            and varies_only_on_what_the_key_holds(response.header(b"vary"))
        )
        body = await _read_bounded(response, self._cache.max_body_bytes) if storable else None
        if lookup.generation is None or body is None:
            if flight is not None:
                flight.set_result(None)
            await relay_response(response, send, [(b"x-cache", b"MISS")])
            return
        entry = CachedResponse(
            status=200,
            headers=[
                (name, value)
                for name, value in response_headers(response.raw_headers)
                if name.lower() in STORED_HEADERS
            ],
            body=body,
            etag=strong_etag(body),
        )
        if flight is not None:
            flight.set_result(entry)
        # Answered first: the store rides in a later turn's Redis call.
        await self._send_entry(entry, b"MISS", miss.if_none_match, send)
        await self._cache.store(lookup, entry)

    async def _send_entry(
        self,
        entry: CachedResponse,
        outcome: bytes,
        if_none_match: str | None,
        send: Send,
        *,
        extra: Sequence[Header] = (),
    ) -> None:
        common = [
            (b"etag", entry.etag.encode()),
            (b"cache-control", self._cache_control),
            (b"x-cache", outcome),
            *extra,
        ]
        if etag_matches(if_none_match, entry.etag):
            await send({"type": "http.response.start", "status": 304, "headers": common})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {
                "type": "http.response.start",
                "status": entry.status,
                "headers": [
                    *entry.headers,
                    (b"content-length", str(len(entry.body)).encode()),
                    *common,
                ],
            }
        )
        await send({"type": "http.response.body", "body": entry.body})
