"""Who the client is, by IP: the socket peer unless a trusted proxy vouches otherwise.

``X-Forwarded-For`` is a list each proxy appends to, and a proxy may append it
as a header line of its own rather than to the existing one: every line is
joined, in order, into one list (RFC 9110 5.3). Only the entries added by
proxies we trust are believed: walking from the right, every trusted hop is
skipped and the first untrusted address is the client. From an untrusted peer
the header is ignored entirely, so a client cannot pick its own rate-limit key.

An IPv6 client controls at least a /64 (SLAAC hands out every address in it),
so :func:`rate_limit_key` keys IPv6 clients by their /64, not by the address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN_CLIENT = "unknown"


# A client sends many requests: its address is parsed once, not per request
# (the parse was 2-3 % of a cached page at the gateway). Bounded, so a flood
# of new addresses only costs the parse it would have cost anyway.
@lru_cache(maxsize=8192)
def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


class ClientIpResolver:
    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies
        )

    def _is_trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self._trusted)

    def is_trusted_peer(self, peer: str | None) -> bool:
        """Whether the socket peer ``peer`` is one of the trusted proxies."""
        address = _parse_ip(peer) if peer is not None else None
        return address is not None and self._is_trusted(address)

    def resolve(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> str:
        """The client's address; ``forwarded_for`` holds every ``X-Forwarded-For`` line."""
        if peer is None:
            return UNKNOWN_CLIENT
        peer_ip = _parse_ip(peer)
        if peer_ip is None:
            return peer
        if not self._trusted or not forwarded_for or not self._is_trusted(peer_ip):
            return str(peer_ip)
        client = peer_ip
        entries = ",".join(forwarded_for).split(",")
        for entry in reversed(entries):
            hop = _parse_ip(entry)
            if hop is None:
                # A garbled entry: nothing left of it can be believed.
                break
            client = hop
            if not self._is_trusted(hop):
                break
        return str(client)


@lru_cache(maxsize=8192)
def rate_limit_key(client: str) -> str:
    """The key a client's per-IP limits count under: the address, or an IPv6 /64."""
    address = _parse_ip(client)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return client
