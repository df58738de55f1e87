"""The patterns in the OpenAPI document promise nothing the validation refuses.

Each field's published pattern is a second spelling of a rule that code
enforces; these properties keep the two from drifting apart. (The fuzz suite
checks the same against the running service, with fewer examples.)
"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from users.domain.passwords import ASCII_PATTERN, MAX_LENGTH, MIN_LENGTH, password_problem
from users.domain.secrets import TOKEN_LENGTH, TOKEN_PATTERN, is_token_shaped, new_token
from users.entrypoints.http.schemas import (
    EMAIL_PATTERN,
    NON_BLANK_LINE_PATTERN,
    PHONE_PATTERN,
    ProfileUpdate,
    RegisterRequest,
)

EXAMPLES = settings(max_examples=300, deadline=None)


def _register(**fields: str) -> RegisterRequest:
    body = {"email": "a@example.com", "password": "pass-1234", "full_name": "A", **fields}
    return RegisterRequest.model_validate(body)


@EXAMPLES
@given(
    st.from_regex(ASCII_PATTERN, fullmatch=True).filter(
        lambda p: MIN_LENGTH <= len(p) <= MAX_LENGTH
    )
)
def test_a_password_matching_the_pattern_is_accepted(password: str) -> None:
    assert password_problem(password) is None


@EXAMPLES
@given(st.text(alphabet=string.printable, min_size=MIN_LENGTH, max_size=MAX_LENGTH))
def test_for_ascii_passwords_the_pattern_is_the_policy(password: str) -> None:
    assert (re.fullmatch(ASCII_PATTERN, password) is not None) == (
        password_problem(password) is None
    )


def test_a_password_of_another_script_is_accepted_beyond_the_pattern() -> None:
    assert password_problem("пароль١٢٣") is None
    assert re.fullmatch(ASCII_PATTERN, "пароль١٢٣") is None


def test_issued_tokens_have_the_published_shape() -> None:
    for _ in range(1000):
        token, _digest = new_token()
        assert len(token) == TOKEN_LENGTH
        assert re.fullmatch(TOKEN_PATTERN, token)
        assert is_token_shaped(token)


@EXAMPLES
@given(st.from_regex(EMAIL_PATTERN, fullmatch=True).filter(lambda e: len(e) <= 254))
def test_an_email_matching_the_pattern_is_accepted(email: str) -> None:
    _register(email=email)


@pytest.mark.parametrize(
    "email",
    [
        "someone@example.test",
        "someone@shop.LOCALHOST",
        "someone@mail.invalid",
        "someone@printer.local",
        "someone@hidden.onion",
        "someone@1.0.0.127.in-addr.arpa",
        "someone@[127.0.0.1]",
        '"some one"@example.com',
        "someone@example",
    ],
)
def test_addresses_outside_the_pattern_are_refused(email: str) -> None:
    assert re.fullmatch(EMAIL_PATTERN, email) is None
    with pytest.raises(ValidationError):
        _register(email=email)


@EXAMPLES
@given(st.from_regex(NON_BLANK_LINE_PATTERN, fullmatch=True).filter(lambda n: len(n) <= 200))
def test_a_full_name_matching_the_pattern_is_accepted(full_name: str) -> None:
    assert _register(full_name=full_name).full_name == full_name.strip()


@pytest.mark.parametrize("blank", [" ", "\u3000", " \xa0 ", "\u2028"])
def test_a_blank_full_name_is_outside_the_pattern_and_refused(blank: str) -> None:
    assert re.fullmatch(NON_BLANK_LINE_PATTERN, blank) is None
    with pytest.raises(ValidationError):
        _register(full_name=blank)


@EXAMPLES
@given(st.from_regex(PHONE_PATTERN, fullmatch=True))
def test_a_phone_matching_the_pattern_is_accepted_unchanged(phone: str) -> None:
    assert ProfileUpdate.model_validate({"phone": phone}).phone == phone
