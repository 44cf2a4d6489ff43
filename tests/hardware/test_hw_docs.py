"""docs/wiring.md tells installers the truth: its pinouts, GPIO table and pictures match the generated board."""

import re
from pathlib import Path

import pytest

from jincun import hwtools

WIRING_MD = hwtools.REPO / "docs" / "wiring.md"


def documented_pinouts(text: str) -> dict[str, list[tuple[int, str]]]:
    """Connector label -> [(pin, signal)] from the tables that follow a line naming `J<n>` and a `LABEL`."""
    tables: dict[str, list[tuple[int, str]]] = {}
    label = None
    for line in text.splitlines():
        named = re.search(r"J\d+\S*\s+`([A-Z0-9_]+)`", line)
        if named and not line.startswith("|"):
            label = named.group(1)
            continue
        row = re.match(r"\|\s*(\d+)\s*\|\s*([^|]+?)\s*\|", line)
        if row and label:
            tables.setdefault(label, []).append((int(row.group(1)), row.group(2)))
    return tables


def documented_gpios(text: str) -> dict[str, int]:
    return {m.group(2): int(m.group(1)) for m in re.finditer(r"^\| GPIO(\d+) \| `([A-Z0-9_]+)` \|", text, re.M)}


@pytest.fixture(scope="module")
def board_connectors():
    circuit, _, _ = hwtools.build_board()
    return {str(p.value): [(int(pin.num), pin.name) for pin in p.pins]
            for p in circuit.parts if p.name.startswith("CONN_")}


def test_every_documented_pinout_matches_the_board(board_connectors):
    docs = documented_pinouts(WIRING_MD.read_text(encoding="utf-8"))
    for label in ("PWR_IN", "C1", "KEYPAD", "RS485_IN", "PROG"):
        assert label in docs, f"docs/wiring.md has no pinout table for {label}"
        assert docs[label] == board_connectors[label], label


def test_documented_gpio_table_matches_the_board(hw_result):
    documented = documented_gpios(WIRING_MD.read_text(encoding="utf-8"))
    assert documented.pop("BOOT") == 0  # the programming pin is documented too
    assert documented == hw_result["board_pins"]


def test_docs_pictures_are_the_generated_ones(hw_result):
    for name in ("wiring.svg", "sheet_compartment1.svg", "sheet_power.svg"):
        key = name.replace(".", "_")
        if key not in hw_result["outputs"]:
            assert name != "wiring.svg", "the connector diagram is always drawn"
            continue  # netlistsvg not available here
        fresh = Path(hw_result["outputs"][key]).read_text(encoding="utf-8")
        published = (hwtools.DOCS_IMG / f"board_{name}").read_text(encoding="utf-8")
        assert published == fresh, f"docs/img/board_{name} is stale: run hwtools.publish_docs_images()"


def test_the_pinout_reader_notices_a_wrong_table(board_connectors):
    text = WIRING_MD.read_text(encoding="utf-8").replace("| 3 | A | twisted pair", "| 3 | B | twisted pair")
    assert documented_pinouts(text)["RS485_IN"] != board_connectors["RS485_IN"]
