"""Mailpit's search syntax, for the part of it that tests and developers use.

A query is a list of terms that must all match. A term is a plain word or
``"a phrase"`` (looked for in the subject, addresses, body and file names), or
``field:value`` with field one of ``to``, ``from``, ``cc``, ``bcc``,
``reply-to``, ``addressed``, ``subject``, ``message-id``; or ``is:read``,
``is:unread``, ``has:attachment``, ``has:inline``. A leading ``-`` or ``!``
negates a term. Matching is a case-insensitive substring test, as in Mailpit.
"""

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from mailsink.message import CapturedMessage, MailAddress

Predicate: TypeAlias = Callable[[CapturedMessage], bool]


def _address_field(
    select: Callable[[CapturedMessage], tuple[MailAddress, ...]],
) -> Callable[[str], Predicate]:
    def predicate_for(needle: str) -> Predicate:
        return lambda message: any(a.matches(needle) for a in select(message))

    return predicate_for


def _sender(message: CapturedMessage) -> tuple[MailAddress, ...]:
    return (message.sender,) if message.sender is not None else ()


def _everyone(message: CapturedMessage) -> tuple[MailAddress, ...]:
    return _sender(message) + message.to + message.cc + message.bcc + message.reply_to


_FIELDS: Final[dict[str, Callable[[str], Predicate]]] = {
    "to": _address_field(lambda m: m.to),
    "from": _address_field(_sender),
    "cc": _address_field(lambda m: m.cc),
    "bcc": _address_field(lambda m: m.bcc),
    "reply-to": _address_field(lambda m: m.reply_to),
    "addressed": _address_field(_everyone),
    "subject": lambda needle: lambda m: needle in m.subject.lower(),
    "message-id": lambda needle: lambda m: needle in m.message_id.lower(),
}

_FLAGS: Final[dict[str, Predicate]] = {
    "is:read": lambda m: m.read,
    "is:unread": lambda m: not m.read,
    "has:attachment": lambda m: bool(m.attachments),
    "has:attachments": lambda m: bool(m.attachments),
    "has:inline": lambda m: bool(m.inline),
    "has:inlines": lambda m: bool(m.inline),
}


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed query; :meth:`matches` tells whether a message satisfies every term."""

    predicates: tuple[tuple[Predicate, bool], ...]

    @classmethod
    def parse(cls, query: str) -> "SearchQuery":
        return cls(tuple(p for token in _tokens(query) if (p := _term(token)) is not None))

    def matches(self, message: CapturedMessage) -> bool:
        return all(predicate(message) != negated for predicate, negated in self.predicates)


def _tokens(query: str) -> list[str]:
    try:
        return shlex.split(query)
    except ValueError:  # an unbalanced quote: fall back to plain words
        return query.split()


def _term(token: str) -> tuple[Predicate, bool] | None:
    negated = len(token) > 1 and token[0] in "-!"
    term = token[1:] if negated else token
    lowered = term.lower()
    if lowered in _FLAGS:
        return _FLAGS[lowered], negated
    name, colon, value = lowered.partition(":")
    if colon and name in _FIELDS:
        return (_FIELDS[name](value), negated) if value else None
    if not lowered.strip():
        return None
    return (lambda m: lowered in m.search_text), negated
