"""The email record and the rules every copy of it obeys, at the API's edge and inside the envelope."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

EMAIL_FIELDS = ("email_subject", "email_sender", "email_timestream", "email_content")

# The public solutions this project replaces accept years 2000 to 2100; so do we, as Unix seconds.
TIMESTREAM_MIN = 946_684_800  # 2000-01-01T00:00:00Z
TIMESTREAM_MAX = 4_102_444_799  # 2099-12-31T23:59:59Z
SUBJECT_MAX_CHARS = 998  # RFC 5322's line limit for a header
SENDER_MAX_CHARS = 320  # a full mailbox: 64-char local part, @, 255-char domain
CONTENT_MAX_BYTES = 256 * 1024  # UTF-8 bytes; with the rule below, an envelope stays under SQS's 1 MiB limit
TIMESTREAM_MAX_DIGITS = 12
# What an error answer lists of unknown keys: the first 20 of each object, each cut at 128 characters.
UNKNOWN_FIELDS_LISTED = 20
POINTER_KEY_MAX_CHARS = 128
# Header-like fields are one line: no C0 controls but TAB, no DEL, no C1 controls (U+0085 NEXT LINE among
# them) and no Unicode line or paragraph separators (U+2028, U+2029).
_SINGLE_LINE_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# Content is text: no C0 controls but TAB, LF, FF and CR. JSON can only write the others as `\u00XX`, six
# bytes for one: allowed, they would make a 256 KiB content a 1.5 MiB envelope, over SQS's 1 MiB limit.
# With them refused, no character of content takes more than twice its UTF-8 size in an envelope.
_CONTENT_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0e-\x1f]")
# What "only whitespace" means in every text field: exactly the characters Python's str.isspace() (and so
# str.strip()) takes, spelled out as a character class so that the OpenAPI document says the same (its `\s`, ECMA
# 262's, differs: it has U+FEFF and lacks U+001C-U+001F and U+0085). A test checks it against every code point.
WHITESPACE_CLASS = "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The characters each text field refuses, as character classes (the regexes above, and the OpenAPI patterns).
SINGLE_LINE_FORBIDDEN_CLASS = _SINGLE_LINE_FORBIDDEN.pattern[1:-1]
CONTENT_FORBIDDEN_CLASS = _CONTENT_FORBIDDEN.pattern[1:-1]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a field was refused; `pointer` is a JSON Pointer into the request body (RFC 6901)."""

    pointer: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Email:
    subject: str
    sender: str
    timestream: int
    content: str

    def as_dict(self) -> dict[str, str | int]:
        return {
            "email_subject": self.subject,
            "email_sender": self.sender,
            "email_timestream": self.timestream,
            "email_content": self.content,
        }


def _utf8_len(value: str) -> int | None:
    """UTF-8 length, or None for strings that cannot be encoded (lone surrogates)."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return None


@dataclass(frozen=True, slots=True)
class _TextRule:
    max_chars: int | None
    max_bytes: int | None
    forbidden: re.Pattern[str]
    forbidden_detail: str


_ONE_LINE_DETAIL = "must be one line: no control characters or line breaks"
_TEXT_RULES = {
    "email_subject": _TextRule(SUBJECT_MAX_CHARS, None, _SINGLE_LINE_FORBIDDEN, _ONE_LINE_DETAIL),
    "email_sender": _TextRule(SENDER_MAX_CHARS, None, _SINGLE_LINE_FORBIDDEN, _ONE_LINE_DETAIL),
    "email_content": _TextRule(
        None,
        CONTENT_MAX_BYTES,
        _CONTENT_FORBIDDEN,
        "must not contain control characters other than tab, line feed, form feed and carriage return",
    ),
}


def _check_text(
    data: Mapping[str, object], field: str, pointer: str, errors: list[FieldError], *, check_characters: bool
) -> str | None:
    rule = _TEXT_RULES[field]
    value = data.get(field)
    if field not in data:
        errors.append(FieldError(pointer, "is required"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(pointer, "must be a string"))
        return None
    if not value.strip():
        errors.append(FieldError(pointer, "must not be empty or only whitespace"))
        return None
    if rule.max_chars is not None and len(value) > rule.max_chars:
        errors.append(FieldError(pointer, f"must be at most {rule.max_chars} characters"))
        return None
    size = _utf8_len(value)
    if size is None:
        errors.append(FieldError(pointer, "must be valid Unicode text"))
        return None
    if rule.max_bytes is not None and size > rule.max_bytes:
        errors.append(FieldError(pointer, f"must be at most {rule.max_bytes} bytes of UTF-8"))
        return None
    if check_characters and rule.forbidden.search(value) is not None:
        errors.append(FieldError(pointer, rule.forbidden_detail))
        return None
    return value


def _check_timestream(data: Mapping[str, object], pointer: str, errors: list[FieldError]) -> int | None:
    if "email_timestream" not in data:
        errors.append(FieldError(pointer, "is required"))
        return None
    value = data["email_timestream"]
    seconds: int
    # An integral number (1693561101.0, 1.693561101e9) is an integer in JSON Schema 2020-12, which the OpenAPI
    # document's `integer` means: taken as one.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        errors.append(FieldError(pointer, "must be Unix time in seconds, as an integer or a string of digits"))
        return None
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= TIMESTREAM_MAX_DIGITS):
            errors.append(FieldError(pointer, "must be Unix time in seconds, as an integer or a string of digits"))
            return None
        seconds = int(value)
    else:
        seconds = value
    if not TIMESTREAM_MIN <= seconds <= TIMESTREAM_MAX:
        errors.append(
            FieldError(pointer, f"must be between {TIMESTREAM_MIN} and {TIMESTREAM_MAX} (years 2000 to 2099, UTC)")
        )
        return None
    return seconds


def parse_email(
    data: object, pointer_prefix: str = "/data", *, check_characters: bool = True
) -> tuple[Email | None, list[FieldError]]:
    """Validates an email object; returns it, or every reason it was refused (never raises).

    `check_characters=False` keeps every rule but the characters allowed in each text field: the consumer
    reads envelopes that older APIs wrote under older character rules, and must not turn them into poison.
    """
    if not isinstance(data, dict):
        return None, [FieldError(pointer_prefix, "must be an object with the email fields")]
    errors: list[FieldError] = []
    subject, sender = (
        _check_text(data, field, f"{pointer_prefix}/{field}", errors, check_characters=check_characters)
        for field in ("email_subject", "email_sender")
    )
    timestream = _check_timestream(data, f"{pointer_prefix}/email_timestream", errors)
    content = _check_text(
        data, "email_content", f"{pointer_prefix}/email_content", errors, check_characters=check_characters
    )
    # Unknown fields are refused, never dropped: a client that sends more than we store must hear about it.
    errors.extend(unknown_field_errors(data, EMAIL_FIELDS, pointer_prefix))
    if errors or subject is None or sender is None or timestream is None or content is None:
        return None, errors
    return Email(subject=subject, sender=sender, timestream=timestream, content=content), []


def unknown_field_errors(
    document: Mapping[str, object], known: Collection[str], pointer_prefix: str
) -> list[FieldError]:
    """One error for each of the first `UNKNOWN_FIELDS_LISTED` unknown keys, then one for how many more there are.

    Bounded, so that the answer is too: a 1.5 MB body of 140,000 unknown keys once got a 7.6 MB answer (an error
    each), held outside the memory budget until the client read it. Each key is cut to `POINTER_KEY_MAX_CHARS`.
    """
    unknown = [key for key in document if key not in known]
    errors = [
        FieldError(f"{pointer_prefix}/{_pointer_token(str(key))}", "is not a known field")
        for key in unknown[:UNKNOWN_FIELDS_LISTED]
    ]
    if len(unknown) > UNKNOWN_FIELDS_LISTED:
        more = len(unknown) - UNKNOWN_FIELDS_LISTED
        errors.append(FieldError(pointer_prefix, f"has {more} more unknown fields, not listed"))
    return errors


def _pointer_token(key: str) -> str:
    """The key as a JSON Pointer token (RFC 6901), cut after `POINTER_KEY_MAX_CHARS` characters with "…"."""
    if len(key) > POINTER_KEY_MAX_CHARS:
        key = key[:POINTER_KEY_MAX_CHARS] + "\u2026"
    return key.replace("~", "~0").replace("/", "~1")
