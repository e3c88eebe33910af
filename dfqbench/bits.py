"""``--bits`` parsing: ``3,4,5`` means W3A3, W4A4, W5A5; ``4w8a`` (or ``w4a8``) is mixed."""

from __future__ import annotations

import re
import reprlib

from dfqbench.errors import DfqError

MIN_BITS, MAX_BITS = 2, 16
_FORMS = (
    re.compile(r"^(?P<w>\d+)$", re.ASCII),
    re.compile(r"^(?P<w>\d+)w(?P<a>\d+)a$", re.ASCII),
    re.compile(r"^w(?P<w>\d+)a(?P<a>\d+)$", re.ASCII),
)
HELP = f"integers in {MIN_BITS}..{MAX_BITS}, as '4' (W4A4) or '4w8a' (W4A8)"


def parse_bits(spec: str) -> list[tuple[int, int]]:
    """``"3,4w8a"`` → ``[(3, 3), (4, 8)]``; one clear error for anything else."""
    pairs: list[tuple[int, int]] = []
    for token in (t.strip().lower() for t in spec.split(",")):
        match = next((m for form in _FORMS if (m := form.match(token))), None)
        if match is None:
            raise DfqError(f"bad --bits entry {reprlib.repr(token)}; valid: {HELP}")
        digits = [match["w"], match.groupdict().get("a") or match["w"]]
        if any(len(d.lstrip("0")) > 2 for d in digits):  # int() refuses thousands of digits with its own error
            raise DfqError(f"bad --bits entry {reprlib.repr(token)}: a bit-width out of range; valid: {HELP}")
        w, a = map(int, digits)
        for value in (w, a):
            if not MIN_BITS <= value <= MAX_BITS:
                raise DfqError(f"bad --bits entry {reprlib.repr(token)}: bit-width {value} is out of range; valid: {HELP}")
        if (w, a) not in pairs:
            pairs.append((w, a))
    return pairs


def label(w_bits: int, a_bits: int) -> str:
    return f"{w_bits}w{a_bits}a"
