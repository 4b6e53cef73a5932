"""Dollar amounts as text and back: exact conversions between decimal USD strings and integer micro-dollars.

Money is never a float anywhere in ClearMaas; this module is the only place USD text is read or written.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = ["MICROS_PER_USD", "format_usd", "parse_usd"]

MICROS_PER_USD = 1_000_000


def parse_usd(text: str, *, allow_zero: bool = False, allow_negative: bool = False) -> int:
    """`"12.50"`, `"$0.000001"` or `"1e3"` as integer micro-dollars, exactly.

    Raises ValueError, with a sentence fit for the command line, for anything that is not a finite decimal
    number or that is finer than a micro-dollar: a fraction of a micro-dollar is refused, never rounded.
    """
    cleaned = text.strip().removeprefix("$").strip().replace("_", "")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a dollar amount (write e.g. 10 or 2.50)") from None
    if not amount.is_finite():
        raise ValueError(f"{text!r} is not a dollar amount (write e.g. 10 or 2.50)")
    micros = amount * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise ValueError(f"{text!r} is finer than a micro-dollar ($0.000001)")
    value = int(micros)
    if value < 0 and not allow_negative:
        raise ValueError(f"{text!r} must not be negative")
    if value == 0 and not allow_zero:
        raise ValueError(f"{text!r} must be more than zero")
    return value


def format_usd(micros: int, *, sign: bool = False) -> str:
    """Integer micro-dollars as an exact decimal string with six places: 1_234_567 -> "1.234567"."""
    whole, fraction = divmod(abs(micros), MICROS_PER_USD)
    prefix = "-" if micros < 0 else ("+" if sign and micros > 0 else "")
    return f"{prefix}{whole}.{fraction:06d}"
