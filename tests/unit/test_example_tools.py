"""The example tools really work: arithmetic, units, orders, clocks and notes."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from examples.data import orders_db
from examples.tools.calculator import evaluate
from examples.tools.notes import read_notes
from runq.config.settings import get_settings
from runq.errors import ToolError
from runq.runs.tools import load_tool_modules, registry

STABLE_NAMES = {
    "calculator",
    "convert_units",
    "lookup_order",
    "list_orders",
    "current_time",
    "append_note",
}


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    load_tool_modules(["examples.tools"])


def call(name: str, **arguments: Any) -> Any:
    """Run a tool the way the tools task does (JSON in, text out) and decode its output."""
    return json.loads(registry.execute(name, json.dumps(arguments)))


def failure(name: str, **arguments: Any) -> ToolError:
    with pytest.raises(ToolError) as info:
        registry.execute(name, json.dumps(arguments))
    return info.value


def test_loading_the_package_registers_every_tool_under_its_stable_name() -> None:
    assert load_tool_modules(["examples.tools"]) == sorted(STABLE_NAMES)
    assert set(registry.names()) >= STABLE_NAMES
    for name in STABLE_NAMES:
        spec = registry.get(name)
        assert spec.description, name
        assert spec.queue == "tools"
        assert spec.idempotent is (name != "append_note"), name
    assert registry.get("calculator").parameters["required"] == ["expression"]
    assert registry.get("convert_units").parameters["required"] == ["value", "from_unit", "to_unit"]
    assert "required" not in registry.get("current_time").parameters


# calculator ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("2 ^ 10", 1024),
        ("-(3 - 5)", 2),
        ("sqrt(16) + abs(-2)", 6.0),
        ("round(2.675, 2)", 2.67),  # binary floating point, as Python rounds it
        ("max(3, 9, 4) - min(3, 9, 4)", 6),
        ("log(8, 2)", 3.0),
        ("floor(2.7) + ceil(2.1)", 5),
        ("2 * pi", math.tau),
        ("1e3 + 0.5", 1000.5),
    ],
)
def test_calculator_evaluates_arithmetic(expression: str, expected: float) -> None:
    assert call("calculator", expression=expression) == {
        "expression": expression,
        "result": expected,
    }


def test_calculator_keeps_big_integers_exact() -> None:
    assert evaluate("2 ** 100") == 1267650600228229401496703205376
    assert evaluate("3 ** 5000") == 3**5000


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", "division by zero in 1 / 0"),
        ("5 % 0", "modulo by zero"),
        ("0 ** -1", "zero cannot be raised to a negative power"),
        ("9 ** 9 ** 9", "exponent 387420489 is too large"),
        ("10 ** 5000", "10 ** 5000 is too large"),
        ("2 ** 9999 * 2 ** 9999", "exceeds 10000 bits"),
        ("1e308 * 10", "not a finite number"),
        ("sqrt(-1)", "sqrt(-1): math domain error"),
        ("(-8) ** 0.5", "complex number"),
        ("__import__('os').system('true')", "not allowed"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("x + 1", "unknown name 'x'"),
        ("'a' * 3", "only numbers are allowed"),
        ("True + 1", "only numbers are allowed"),
        ("(1).real", "Attribute is not allowed"),
        ("[1, 2][0]", "not allowed"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("sqrt(x=4)", "positional arguments only"),
        ("(1 + 2", "not a valid expression"),
        ("", "the expression is empty"),
        ("1+" * 300 + "1", "longer than 500 characters"),
    ],
)
def test_calculator_refuses_what_it_should(expression: str, message: str) -> None:
    err = failure("calculator", expression=expression)
    assert err.code == "tool_raised"
    assert str(err).startswith("tool 'calculator' raised ValueError: ")
    assert message in str(err)


def test_calculator_never_evaluates_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ValueError):
        evaluate(f"__import__('pathlib').Path('{marker}').touch()")
    assert not marker.exists()


# convert_units -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (1, "km", "m", 1000.0),
        (1, "mile", "km", 1.609344),
        (12, "inches", "ft", 1.0),
        (3, "feet", "cm", 91.44),
        (1, "nautical miles", "m", 1852.0),
        (1, "lb", "kg", 0.45359237),
        (16, "ounces", "pounds", 1.0),
        (2, "stone", "lbs", 28.0),
        (1500, "g", "kg", 1.5),
        (1, "US gallon", "litres", 3.785411784),
        (1, "imperial gallons", "l", 4.54609),
        (2, "cups", "fl oz", 16.0),
        (3, "tsp", "tbsp", 1.0),
        (1, "m3", "L", 1000.0),
        (100, "°C", "°F", 212.0),
        (98.6, "degrees F", "celsius", 37.0),
        (0, "C", "K", 273.15),
        (0, "kelvin", "F", -459.67),
        (-40, "F", "C", -40.0),
    ],
)
def test_convert_units(value: float, source: str, target: str, expected: float) -> None:
    out = call("convert_units", value=value, from_unit=source, to_unit=target)
    assert out["result"] == pytest.approx(expected, rel=1e-12)
    assert out["value"] == value


def test_convert_units_reports_canonical_units_and_dimension() -> None:
    assert call("convert_units", value=5, from_unit="Kilometres", to_unit="MILES") == {
        "value": 5,
        "from_unit": "km",
        "to_unit": "mi",
        "dimension": "length",
        "result": 3.10685596119,
    }


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("km", "kg", "cannot convert length (km) to mass (kg)"),
        ("°C", "litres", "cannot convert temperature (C) to volume (l)"),
        ("furlong", "m", "unknown unit 'furlong'; supported units: length: mm, cm, m"),
        ("m", "", "unknown unit ''"),
    ],
)
def test_convert_units_errors(source: str, target: str, message: str) -> None:
    err = failure("convert_units", value=1, from_unit=source, to_unit=target)
    assert err.code == "tool_raised"
    assert message in str(err)


def test_convert_units_refuses_temperatures_below_absolute_zero() -> None:
    err = failure("convert_units", value=-300, from_unit="C", to_unit="K")
    assert "-300 °C is below absolute zero" in str(err)


def test_convert_units_arguments_are_checked_against_the_schema() -> None:
    err = failure("convert_units", value="ten", from_unit="m", to_unit="km")
    assert err.code == "invalid_arguments"
    assert "arguments.value: 'ten' is not of type 'number'" in str(err)


# lookup_order / list_orders ----------------------------------------------------------


def test_lookup_order_returns_the_order_from_the_database() -> None:
    order = call("lookup_order", order_id="ORD-1005")
    assert order["order_id"] == "ORD-1005"
    assert order["status"] == "delivered"
    assert order["placed_at"] == "2026-09-18T07:58:00Z"
    assert order["customer"] == {
        "id": "C005",
        "name": "Sofia Rossi",
        "email": "sofia.rossi@example.net",
        "city": "Turin",
        "country": "IT",
    }
    assert [(i["sku"], i["quantity"], i["line_total"]) for i in order["items"]] == [
        ("BR-V60-02", 1, "24.90"),
        ("FL-V60-100", 2, "13.80"),
        ("SC-DIG-01", 1, "44.90"),
        ("CB-COL-1K", 1, "39.90"),
    ]
    assert (order["subtotal"], order["shipping"], order["total"]) == ("123.50", "0.00", "123.50")
    assert order["currency"] == "EUR"
    assert order["item_count"] == 5
    assert order["shipment"] == {"carrier": "BRT", "tracking_number": "060123456789012"}


def test_an_unshipped_order_has_no_shipment_and_pays_shipping() -> None:
    order = call("lookup_order", order_id="ORD-1020")
    assert order["status"] == "pending"
    assert "shipment" not in order
    assert (order["subtotal"], order["shipping"], order["total"]) == ("30.90", "9.90", "40.80")


@pytest.mark.parametrize("spelling", ["ord-1011", " ORD1011 ", "1011", "ORD 1011"])
def test_lookup_order_accepts_common_spellings_of_an_id(spelling: str) -> None:
    assert call("lookup_order", order_id=spelling)["order_id"] == "ORD-1011"


def test_lookup_order_unknown_and_malformed_ids() -> None:
    err = failure("lookup_order", order_id="ORD-9999")
    assert err.code == "tool_raised"
    assert "no order with id 'ORD-9999'" in str(err)
    err = failure("lookup_order", order_id="DROP TABLE orders")
    assert "'DROP TABLE orders' is not an order id" in str(err)


def test_list_orders_by_name_email_or_id_newest_first() -> None:
    by_name = call("list_orders", customer="amelie")  # accents and case ignored
    assert [c["id"] for c in by_name["customers"]] == ["C001"]
    assert [o["order_id"] for o in by_name["orders"]] == ["ORD-1016", "ORD-1006", "ORD-1001"]
    assert by_name["orders"][0] == {
        "order_id": "ORD-1016",
        "customer_id": "C001",
        "status": "shipped",
        "placed_at": "2026-11-20T18:52:00Z",
        "total": "155.00",
        "currency": "EUR",
        "item_count": 3,
    }
    assert call("list_orders", customer="AMELIE.LAURENT@example.com") == by_name
    assert call("list_orders", customer="c001") == by_name
    novak = call("list_orders", customer="Tomas Novak")
    assert novak["customers"][0]["name"] == "Tomáš Novák"


def test_list_orders_filters_by_status() -> None:
    out = call("list_orders", customer="Jonas Becker", status="delivered")
    assert [o["order_id"] for o in out["orders"]] == ["ORD-1010", "ORD-1002"]
    assert call("list_orders", customer="C002", status="refunded")["orders"] == []
    err = failure("list_orders", customer="C002", status="lost")
    assert err.code == "invalid_arguments"
    assert "arguments.status: 'lost' is not one of" in str(err)


def test_list_orders_unknown_customer() -> None:
    err = failure("list_orders", customer="Nobody Atall")
    assert "no customer matches 'Nobody Atall'" in str(err)
    assert "say which customer" in str(failure("list_orders", customer="   "))


def test_every_order_adds_up_and_follows_the_shipping_rule() -> None:
    with closing(orders_db.connect()) as db:
        rows = db.execute(
            "SELECT o.id, c.country, t.subtotal_cents, t.shipping_cents, t.total_cents "
            "FROM orders o JOIN order_totals t ON t.order_id = o.id "
            "JOIN customers c ON c.id = o.customer_id"
        ).fetchall()
    assert len(rows) == 20
    flat = {"GB": 990, "IE": 790}
    for order_id, country, subtotal, shipping, total in rows:
        assert total == subtotal + shipping, order_id
        expected = 0 if subtotal >= 6000 else flat.get(country, 490)
        assert shipping == expected, order_id


def test_the_database_is_opened_read_only() -> None:
    with (
        closing(orders_db.connect()) as db,
        pytest.raises(sqlite3.OperationalError, match="readonly"),
    ):
        db.execute("DELETE FROM orders")


def test_the_database_is_built_lazily_from_the_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orders_db, "DEFAULT_DATABASE", tmp_path / "absent" / "orders.sqlite")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = orders_db.database_path()
    assert path.parent == tmp_path / "cache" / "runq"
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert orders_db.built_from(path) == orders_db.seed_digest()
    assert orders_db.database_path() == path  # reused, not rebuilt
    # An explicit build next to the seed is preferred while it matches the seed.
    explicit = orders_db.build_database(tmp_path / "explicit.sqlite")
    monkeypatch.setattr(orders_db, "DEFAULT_DATABASE", explicit)
    assert orders_db.database_path() == explicit


def test_a_cache_folder_others_can_write_to_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The predictable-path attack: a folder anyone may write is where a planted
    database would wait for the tools; it is refused, not read."""
    monkeypatch.setattr(orders_db, "DEFAULT_DATABASE", tmp_path / "absent" / "orders.sqlite")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shared = tmp_path / "runq"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match="others cannot write"):
        orders_db.database_path()


def test_building_is_deterministic_and_tracks_the_seed(tmp_path: Path) -> None:
    def dump(path: Path) -> list[str]:
        with closing(sqlite3.connect(path)) as db:
            return list(db.iterdump())

    first = orders_db.build_database(tmp_path / "a.sqlite")
    second = orders_db.build_database(tmp_path / "b.sqlite")
    assert dump(first) == dump(second)
    changed = tmp_path / "changed.sql"
    changed.write_text(orders_db.SEED.read_text() + "\n-- a comment\n")
    rebuilt = orders_db.build_database(tmp_path / "c.sqlite", seed=changed)
    assert orders_db.built_from(rebuilt) == orders_db.seed_digest(changed)
    assert orders_db.built_from(rebuilt) != orders_db.built_from(first)
    assert orders_db.built_from(tmp_path / "missing.sqlite") is None
    assert not list(tmp_path.glob("*.tmp-*"))


# current_time ------------------------------------------------------------------------


def test_current_time_defaults_to_utc_and_is_now() -> None:
    before = int(datetime.now(UTC).timestamp())
    out = call("current_time")
    after = int(datetime.now(UTC).timestamp())
    assert out["timezone"] == "UTC"
    assert out["utc_offset"] == "+00:00"
    assert before <= out["unix"] <= after
    assert datetime.fromisoformat(out["iso"]).timestamp() == out["unix"]


@pytest.mark.parametrize("spelling", ["Europe/Paris", "europe/paris", " Europe/Paris "])
def test_current_time_in_a_zone(spelling: str) -> None:
    out = call("current_time", timezone=spelling)
    assert out["timezone"] == "Europe/Paris"
    local = datetime.fromisoformat(out["iso"])
    expected = datetime.fromtimestamp(out["unix"], ZoneInfo("Europe/Paris"))
    assert local == expected
    assert local.utcoffset() == expected.utcoffset()
    offset = expected.strftime("%z")
    assert out["utc_offset"] == f"{offset[:3]}:{offset[3:]}"
    assert out["abbreviation"] in {"CET", "CEST"}
    assert out["weekday"] == expected.strftime("%A")
    assert out["date"] == expected.date().isoformat()


def test_current_time_knows_half_hour_zones_and_utc_aliases() -> None:
    assert call("current_time", timezone="Asia/Kolkata")["utc_offset"] == "+05:30"
    assert call("current_time", timezone="gmt")["timezone"] == "UTC"
    assert call("current_time", timezone="America/New York")["timezone"] == "America/New_York"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "", "CEST+2"])
def test_current_time_unknown_zone(zone: str) -> None:
    err = failure("current_time", timezone=zone)
    assert err.code == "tool_raised"
    assert f"unknown time zone {zone!r}" in str(err)
    assert "Europe/Paris" in str(err)


# append_note --------------------------------------------------------------------------


@pytest.fixture
def runq_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("RUNQ_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def test_append_note_appends_one_line_per_call(runq_home: Path) -> None:
    first = call("append_note", note="buy more filters")
    assert first["saved"] == "buy more filters"
    assert first["path"] == str(runq_home / "notes.txt")
    call("append_note", note="buy more filters")  # not idempotent: a second line
    call("append_note", note="call\nthe  roaster")
    assert read_notes() == ["buy more filters", "buy more filters", "call the roaster"]
    lines = (runq_home / "notes.txt").read_text().splitlines()
    stamp = datetime.fromisoformat(lines[0].split("\t")[0])
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_append_note_refuses_empty_and_oversized_notes(runq_home: Path) -> None:
    assert "the note is empty" in str(failure("append_note", note=" \n "))
    assert "the limit is 2000" in str(failure("append_note", note="x" * 2001))
    assert read_notes() == []
