"""The password policy of the contract: 8-128 characters, a letter and a digit."""

from __future__ import annotations

MIN_LENGTH = 8
MAX_LENGTH = 128
# The policy's letter, digit and NUL rules as a JSON Schema pattern (the lengths are minLength
# and maxLength, which count code points as ``len`` does). A portable pattern cannot name Unicode
# letters, so it asks for an ASCII letter and digit: every password it matches is accepted, and
# for ASCII passwords it is exactly the policy.
ASCII_PATTERN = r"^[^\x00]*(?:[A-Za-z][^\x00]*[0-9]|[0-9][^\x00]*[A-Za-z])[^\x00]*$"


def password_problem(password: str) -> str | None:
    """Why ``password`` breaks the policy, or None if it is acceptable."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        return f"must be {MIN_LENGTH} to {MAX_LENGTH} characters long"
    if not any(ch.isalpha() for ch in password):
        return "must contain at least one letter"
    if not any(ch.isdigit() for ch in password):
        return "must contain at least one digit"
    if "\x00" in password:
        return "must not contain NUL characters"
    return None


def normalize_email(email: str) -> str:
    """The form emails are compared in: case-insensitive, surrounding space ignored."""
    return email.strip().casefold()
