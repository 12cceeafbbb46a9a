"""`convert_units`: length, mass, volume and temperature, with the names people type.

Each unit is a factor to its dimension's base unit (metre, kilogram, litre), taken from
the exact legal definitions (1 in = 0.0254 m, 1 lb = 0.45359237 kg, 1 US gal =
3.785411784 L, 1 imperial gal = 4.54609 L); temperatures are affine and converted
through kelvin. Units are matched case-insensitively with their common aliases and
plurals ("km", "kilometres", "lbs", "°F", "fl oz"). Volumes without a qualifier (gallon,
pint, cup, fluid ounce) are US customary; say "imperial gallon" for the UK one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from runq.runs.tools import tool


@dataclass(frozen=True)
class Unit:
    symbol: str
    dimension: str
    factor: float = 1.0  # base units per one of this unit (unused for temperatures)


_US_GALLON = 3.785411784
_IMPERIAL_GALLON = 4.54609
_POUND = 0.45359237

# symbol, dimension, factor, aliases (plurals are handled when looking a unit up)
_TABLE: list[tuple[str, str, float, tuple[str, ...]]] = [
    ("mm", "length", 0.001, ("millimeter", "millimetre")),
    ("cm", "length", 0.01, ("centimeter", "centimetre")),
    ("m", "length", 1.0, ("meter", "metre")),
    ("km", "length", 1000.0, ("kilometer", "kilometre")),
    ("in", "length", 0.0254, ("inch", '"')),
    ("ft", "length", 0.3048, ("foot", "feet", "'")),
    ("yd", "length", 0.9144, ("yard",)),
    ("mi", "length", 1609.344, ("mile", "statute mile")),
    ("nmi", "length", 1852.0, ("nautical mile",)),
    ("mg", "mass", 1e-6, ("milligram", "milligramme")),
    ("g", "mass", 0.001, ("gram", "gramme")),
    ("kg", "mass", 1.0, ("kilogram", "kilogramme", "kilo")),
    ("t", "mass", 1000.0, ("tonne", "metric ton")),
    ("oz", "mass", _POUND / 16, ("ounce",)),
    ("lb", "mass", _POUND, ("pound", "lbs")),
    ("st", "mass", _POUND * 14, ("stone",)),
    ("ml", "volume", 0.001, ("milliliter", "millilitre", "cc", "cm3")),
    ("cl", "volume", 0.01, ("centiliter", "centilitre")),
    ("dl", "volume", 0.1, ("deciliter", "decilitre")),
    ("l", "volume", 1.0, ("liter", "litre", "ltr")),
    ("m3", "volume", 1000.0, ("cubic meter", "cubic metre", "m^3")),
    ("tsp", "volume", _US_GALLON / 768, ("teaspoon",)),
    ("tbsp", "volume", _US_GALLON / 256, ("tablespoon",)),
    ("fl oz", "volume", _US_GALLON / 128, ("fluid ounce", "floz", "us fl oz")),
    ("cup", "volume", _US_GALLON / 16, ("us cup",)),
    ("pt", "volume", _US_GALLON / 8, ("pint", "us pint")),
    ("qt", "volume", _US_GALLON / 4, ("quart", "us quart")),
    ("gal", "volume", _US_GALLON, ("gallon", "us gallon", "us gal")),
    ("imp pt", "volume", _IMPERIAL_GALLON / 8, ("imperial pint", "uk pint")),
    ("imp gal", "volume", _IMPERIAL_GALLON, ("imperial gallon", "uk gallon", "uk gal")),
    ("C", "temperature", 1.0, ("celsius", "degc", "°c", "centigrade")),
    ("F", "temperature", 1.0, ("fahrenheit", "degf", "°f")),
    ("K", "temperature", 1.0, ("kelvin", "degk")),
]

# Temperature -> kelvin and back: (scale, offset) with K = value * scale + offset.
_TO_KELVIN: dict[str, tuple[float, float]] = {
    "C": (1.0, 273.15),
    "F": (5 / 9, 273.15 - 32 * 5 / 9),
    "K": (1.0, 0.0),
}


def _build_aliases() -> dict[str, Unit]:
    aliases: dict[str, Unit] = {}
    for symbol, dimension, factor, names in _TABLE:
        unit = Unit(symbol, dimension, factor)
        aliases[symbol.lower()] = unit
        aliases.update(dict.fromkeys(names, unit))
    return aliases


_UNITS = _build_aliases()


def _candidates(text: str) -> list[str]:
    """Spellings to try for `text`: as typed, without "degrees", without a plural."""
    text = re.sub(r"\s+", " ", text.strip().lower().replace("º", "°").replace(".", ""))
    text = re.sub(r"^(degrees|degree|deg) ", "", text)
    found = [text]
    if text.endswith("es"):
        found.append(text[:-2])  # inches
    if text.endswith("s"):
        found.append(text[:-1])  # miles, us gallons, fluid ounces
    return found


def find_unit(text: str) -> Unit:
    """The unit `text` names; `ValueError` lists the supported symbols if none."""
    for candidate in _candidates(text):
        if candidate in _UNITS:
            return _UNITS[candidate]
    raise ValueError(f"unknown unit {text!r}; supported units: {supported_units()}")


def supported_units() -> str:
    """Supported unit symbols grouped by dimension, for error messages."""
    groups: dict[str, list[str]] = {}
    for symbol, dimension, _, _ in _TABLE:
        groups.setdefault(dimension, []).append(symbol)
    return "; ".join(f"{dim}: {', '.join(symbols)}" for dim, symbols in groups.items())


@tool(timeout=5.0)
def convert_units(
    value: Annotated[float, "The quantity to convert"],
    from_unit: Annotated[str, "Unit of the value, e.g. 'km', 'lb', 'fl oz', '°F'"],
    to_unit: Annotated[str, "Unit to convert to, of the same kind (length, mass, ...)"],
) -> dict[str, Any]:
    """Convert a quantity between units of length, mass, temperature or volume.

    Accepts symbols and spelled-out names (km, miles, lbs, kilograms, °C, fahrenheit,
    litres, US gallons, imperial gallons). Converting between kinds (km to kg) is an error.
    """
    source, target = find_unit(from_unit), find_unit(to_unit)
    if source.dimension != target.dimension:
        raise ValueError(
            f"cannot convert {source.dimension} ({source.symbol}) to "
            f"{target.dimension} ({target.symbol})"
        )
    if source.dimension == "temperature":
        result = _convert_temperature(float(value), source.symbol, target.symbol)
    else:
        result = float(value) * source.factor / target.factor
    return {
        "value": value,
        "from_unit": source.symbol,
        "to_unit": target.symbol,
        "dimension": source.dimension,
        "result": float(f"{result:.12g}"),  # drop binary noise (0.30000000000000004)
    }


def _convert_temperature(value: float, source: str, target: str) -> float:
    scale, offset = _TO_KELVIN[source]
    kelvin = value * scale + offset
    if kelvin < -1e-9:
        raise ValueError(f"{value:g} {_degrees(source)} is below absolute zero")
    scale, offset = _TO_KELVIN[target]
    return (kelvin - offset) / scale


def _degrees(symbol: str) -> str:
    return "K" if symbol == "K" else f"°{symbol}"
