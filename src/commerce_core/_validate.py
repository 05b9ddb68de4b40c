"""Small shared checks that collect field errors instead of stopping at the first one."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from commerce_core.errors import FieldError, InvalidInput

__all__ = [
    "EMAIL",
    "IDENTIFIER",
    "MAX_METADATA_KEYS",
    "MAX_METADATA_VALUE",
    "METADATA_FORBIDDEN",
    "METADATA_KEY",
    "Errors",
    "check_email",
    "check_idempotency_key",
    "check_identifier",
    "check_metadata",
    "check_text",
    "units_by_sku",
]

#: SKUs and warehouse codes (the HTTP contract's pattern).
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Errors:
    """Collects `FieldError`s and raises them together."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(FieldError(path, message))

    def raise_if_any(self, message: str) -> None:
        if self.items:
            raise InvalidInput(message, self.items)


def check_identifier(errors: Errors, path: str, value: object) -> None:
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        errors.add(path, "must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _format_characters() -> str:
    """The Basic Multilingual Plane's format characters (Unicode category ``Cf``) as a
    regular-expression class body: bidirectional overrides, zero-width spaces and joiners,
    the byte-order mark, soft hyphens."""
    ranges: list[list[int]] = []
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF or unicodedata.category(chr(code)) != "Cf":
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)


#: Characters that look like nothing: the Hangul fillers, the blank Braille pattern, the
#: combining grapheme joiner and the Khmer inherent vowels (letters and marks by category,
#: blanks on the page).
BLANKS = "\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5"

#: Characters text fields refuse, as a class body for regular expressions (the gateway
#: publishes it in its JSON Schema): C0 and C1 controls, lone surrogates (not UTF-8), the
#: line and paragraph separators, format characters (which can make a name or an address on
#: a packing slip read as something else: ``"abc\u202egpj.exe"``), the blanks above, private
#: use characters and noncharacters.
FORBIDDEN_CHARACTERS = ("\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff\\u2028\\u2029"
                        + _format_characters()
                        + "".join(f"\\u{ord(ch):04x}" for ch in BLANKS)
                        + "\\ue000-\\uf8ff\\ufdd0-\\ufdef\\ufffe\\uffff")
FORBIDDEN_TEXT = re.compile(f"[{FORBIDDEN_CHARACTERS}]")

#: Categories refused beyond the Basic Multilingual Plane (the expression covers the BMP):
#: format, private use, unassigned and noncharacters.
_FORBIDDEN_ASTRAL = frozenset({"Cf", "Co", "Cn"})
#: Categories that show nothing by themselves: a text of only these is blank.
_INVISIBLE = frozenset({"Mn", "Me", "Cf", "Zs", "Cc"})


def _forbidden(value: str) -> bool:
    return FORBIDDEN_TEXT.search(value) is not None or any(
        unicodedata.category(ch) in _FORBIDDEN_ASTRAL for ch in value if ord(ch) > 0xFFFF)


def _blank(value: str) -> bool:
    """Nothing a reader would see: spaces, marks, variation selectors, fillers."""
    return all(ch.isspace() or ch in BLANKS or unicodedata.category(ch) in _INVISIBLE
               for ch in value)


def check_text(errors: Errors, path: str, value: object, *, max_length: int = 200) -> None:
    if not isinstance(value, str) or _blank(value):
        errors.add(path, "must be a non-empty string with something visible in it")
    elif _forbidden(value):
        errors.add(path, "must not contain control, format or separator characters")
    elif len(value) > max_length:
        errors.add(path, f"must be at most {max_length} characters")


def check_instance(errors: Errors, path: str, value: object, kind: type, what: str) -> None:
    """Runtime type check for callers without a type checker (and for input from the wire)."""
    if not isinstance(value, kind):
        errors.add(path, f"must be {what}")


def check_positive_int(errors: Errors, path: str, value: object, *, maximum: int) -> None:
    if type(value) is not int or not 1 <= value <= maximum:
        errors.add(path, f"must be an integer from 1 to {maximum}")


def check_idempotency_key(key: object, path: str = "idempotency_key") -> None:
    """1 to 255 printable ASCII characters, as the HTTP contract says; `InvalidInput` if not."""
    if not isinstance(key, str) or not 1 <= len(key) <= 255 or not all(
        " " <= ch <= "~" for ch in key
    ):
        raise InvalidInput("invalid idempotency key", [
            FieldError(path, "must be 1 to 255 printable ASCII characters")
        ])


#: A contact address: the WHATWG "valid e-mail address" (what browsers accept in an e-mail
#: field), with a dot in the domain (a shop cannot mail ``someone@localhost``).
EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")


def check_email(errors: Errors, path: str, value: object) -> None:
    if not isinstance(value, str) or len(value) > 254 or not EMAIL.fullmatch(value):
        errors.add(path, "must be an e-mail address (name@example.com)")


#: Keys of an order's metadata, and how many an order may have.
METADATA_KEY = re.compile(r"[a-z0-9_.-]{1,40}")
MAX_METADATA_KEYS = 20
MAX_METADATA_VALUE = 500


#: What metadata values refuse: `FORBIDDEN_CHARACTERS` but line breaks and tabs.
METADATA_FORBIDDEN = FORBIDDEN_CHARACTERS.replace("\\x00-\\x1f", "\\x00-\\x08\\x0b-\\x1f", 1)


def check_metadata_value(errors: Errors, path: str, value: object) -> None:
    """A string of at most 500 characters; line breaks (LF or CRLF, as a browser's form sends
    them) and tabs are allowed (a gift note), other control and format characters are not
    (empty is allowed)."""
    if not isinstance(value, str):
        errors.add(path, "must be a string")
    elif len(value) > MAX_METADATA_VALUE:
        errors.add(path, f"must be at most {MAX_METADATA_VALUE} characters")
    elif _forbidden(value.replace("\r\n", " ").replace("\n", " ").replace("\t", " ")):
        errors.add(path, "must not contain control (other than line breaks and tabs), "
                   "format or separator characters")


def check_metadata_key(errors: Errors, path: str, key: object) -> bool:
    if not isinstance(key, str) or not METADATA_KEY.fullmatch(key):
        errors.add(path, "keys must match ^[a-z0-9_.-]{1,40}$")
        return False
    return True


def check_metadata(errors: Errors, path: str, value: object) -> None:
    """At most 20 keys (`METADATA_KEY`) to strings of at most 500 characters."""
    if not isinstance(value, dict):
        errors.add(path, "must be an object of strings")
        return
    if len(value) > MAX_METADATA_KEYS:
        errors.add(path, f"must have at most {MAX_METADATA_KEYS} keys")
        return
    for key, item in value.items():
        if check_metadata_key(errors, path, key):
            check_metadata_value(errors, f"{path}.{key}", item)


def units_by_sku(errors: Errors, lines: object, kind: type, most: int) -> dict[str, int]:
    """SKU to units of a non-empty list of ``kind`` items (each with a ``sku`` and a
    ``quantity`` of 1 to ``most``), in the order first named; each problem in ``errors``
    under ``lines`` (typed loosely: callers without a type checker pass anything)."""
    units: dict[str, int] = {}
    if isinstance(lines, str | bytes) or not isinstance(lines, Sequence) or not lines:
        errors.add("lines", "must be a non-empty list of lines")
        return units
    for index, line in enumerate(lines):
        if not isinstance(line, kind):
            errors.add(f"lines[{index}]", f"must be a {kind.__name__}")
            continue
        sku, quantity = getattr(line, "sku", None), getattr(line, "quantity", None)
        check_identifier(errors, f"lines[{index}].sku", sku)
        if type(quantity) is not int or not 1 <= quantity <= most:
            errors.add(f"lines[{index}].quantity", f"must be 1 to {most}")
        elif isinstance(sku, str):
            units[sku] = units.get(sku, 0) + quantity
    return units
