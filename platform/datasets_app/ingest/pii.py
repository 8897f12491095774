"""Masking of personal data in texts: e-mail addresses, IBANs (mod-97 checked), card numbers (Luhn
checked), IP addresses (v4 and v6, parsed) and phone numbers, replaced by typed placeholders.

Checksums keep ordinary numbers (order ids, amounts) out of the card and IBAN masks; phone numbers
have no checksum, so only shapes typical of phone numbers are masked (international +/00 prefix,
North-American (555) 123-4567, national trunk-prefixed 030 1234567, Chinese mobile 13812345678).
"""

from __future__ import annotations

import ipaddress
import re

PLACEHOLDERS = {"email": "[EMAIL]", "iban": "[IBAN]", "card": "[CARD]", "ip": "[IP]", "phone": "[PHONE]"}

EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"
)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"(?:\+|00)[1-9]\d{0,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{1,4}){1,5}"  # international
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (555) 123-4567
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r"|0\d{1,4}[ /-]\d{3,4}[ -]?\d{3,5}"  # 030 1234567, 020 7946 0958
    r"|1[3-9]\d{9}"  # Chinese mobile
    r")(?![\w])"
)


def luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _card(match: re.Match) -> str | None:
    digits = _digits(match.group())
    return PLACEHOLDERS["card"] if 13 <= len(digits) <= 19 and luhn_ok(digits) else None


def _iban(match: re.Match) -> str | None:
    return PLACEHOLDERS["iban"] if iban_ok(match.group()) else None


def _ip(match: re.Match) -> str | None:
    try:
        ipaddress.ip_address(match.group())
    except ValueError:
        return None
    return PLACEHOLDERS["ip"]


def _phone(match: re.Match) -> str | None:
    return PLACEHOLDERS["phone"] if 7 <= len(_digits(match.group())) <= 15 else None


# Order matters: e-mails and IBANs contain digit runs that would otherwise look like phones or cards.
RULES = [
    ("email", EMAIL, lambda m: PLACEHOLDERS["email"]),
    ("iban", IBAN, _iban),
    ("card", CARD, _card),
    ("ip", IPV4, _ip),
    ("ip", IPV6, _ip),
    ("phone", PHONE, _phone),
]


def mask_pii(text: str, counts: dict[str, int]) -> str:
    """`text` with personal data replaced; adds what was replaced to `counts` (kind → number)."""
    if "@" not in text and not any(ch.isdigit() for ch in text) and ":" not in text:
        return text
    for kind, pattern, replace in RULES:
        hits = 0

        def substitute(match: re.Match, replace=replace) -> str:
            nonlocal hits
            replacement = replace(match)
            if replacement is None:
                return match.group()
            hits += 1
            return replacement

        text = pattern.sub(substitute, text)
        if hits:
            counts[kind] = counts.get(kind, 0) + hits
    return text
