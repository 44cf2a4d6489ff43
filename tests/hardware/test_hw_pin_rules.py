"""The pin-map reader, the firmware/board comparison and the ESP32 pin rules, on hand-made pin maps."""

import textwrap

import pytest

from jincun.hwtools import (
    NetFacts,
    PinMapError,
    PinUse,
    compare_pins,
    esp32_violations,
    firmware_pins,
    function_key,
    infer_use,
    netlist_erc,
    parse_pin_map,
    read_netlist,
)

BOARD = {"I2C_SDA": 21, "I2C_SCL": 22, "KEYPAD_ROW1": 13, "KEYPAD_ROW2": 14, "KEYPAD_COL1": 36, "BUZZER": 25}


def test_reads_micropython_constants_without_running_them():
    src = textwrap.dedent("""
        from micropython import const
        SDA = const(21)
        SCL = 22
        ROWS = (13, const(14))
        COL1 = const(36)
        COLS = [COL1]
        I2C_FREQ = const(400_000)
        NAME = "board"
        _PRIVATE = const(5)
        def helper():
            X = 3
    """)
    pm = parse_pin_map(src)
    assert pm["ROWS"] == (13, 14) and pm["COLS"] == (36,) and pm["SDA"] == 21
    assert "NAME" not in pm and "X" not in pm
    pins = firmware_pins(pm)
    assert pins == {"SDA": 21, "SCL": 22, "ROWS[1]": 13, "ROWS[2]": 14, "COL1": 36, "COLS[1]": 36}


def test_unparsable_pin_map_is_a_clear_error():
    with pytest.raises(PinMapError, match="does not parse"):
        parse_pin_map("SDA = (21,\n")


@pytest.mark.parametrize("name,key", [
    ("KEYPAD_ROWS[2]", "ROW2"), ("PIN_KP_ROW_2", "ROW2"), ("KEYPAD_ROW2", "ROW2"), ("I2C_SDA", "SDA"),
    ("PIN_SDA", "SDA"), ("RS485_DE", "DE_RS485"), ("UART2_TX", "RS485_TX"), ("MCP_INT", "EXP_INT"),
    ("LED_STATUS", "LED"), ("STATUS_LED", "LED"), ("BUZZER_PIN", "BUZZER"),
])
def test_pin_names_fold_onto_one_function(name, key):
    assert function_key(name) == key


def test_matching_map_has_no_mismatch():
    fw = {"SDA": 21, "SCL": 22, "KEYPAD_ROWS[1]": 13, "KEYPAD_ROWS[2]": 14, "KEYPAD_COLS[1]": 36, "BUZZER": 25}
    assert compare_pins(fw, BOARD) == []


def test_swapped_i2c_pins_are_two_mismatches():
    fw = {"SDA": 22, "SCL": 21, "KEYPAD_ROWS[1]": 13, "KEYPAD_ROWS[2]": 14, "KEYPAD_COLS[1]": 36, "BUZZER": 25}
    problems = compare_pins(fw, BOARD)
    assert len(problems) == 2
    assert any("SDA = GPIO22" in p and "GPIO21" in p for p in problems)


def test_missing_and_extra_pins_are_reported_both_ways():
    fw = {"SDA": 21, "SCL": 22, "KEYPAD_ROWS[1]": 13, "KEYPAD_ROWS[2]": 14, "KEYPAD_COLS[1]": 36, "FAN": 23}
    problems = compare_pins(fw, BOARD)
    assert any("FAN" in p and "no FAN net" in p for p in problems)
    assert any("BUZZER" in p and "no constant in pins.py" in p for p in problems)


def test_two_functions_on_one_gpio_is_a_mismatch():
    fw = {"SDA": 21, "SCL": 21}
    assert any("GPIO21 is given to" in p for p in compare_pins(fw, {"I2C_SDA": 21, "I2C_SCL": 21}))


@pytest.mark.parametrize("name,gpio,needle", [
    ("LOCK1", 12, "drives a lock"),
    ("LOCK_PINS[1]", 0, "drives a lock"),
    ("LED", 34, "input-only"),
    ("BUZZER", 39, "input-only"),
    ("KEYPAD_COLS[1]", 7, "SPI flash"),
    ("DOOR1", 20, "no such GPIO"),
    ("RS485_TX", 1, "UART0"),
])
def test_wrong_pin_maps_break_esp32_rules(name, gpio, needle):
    problems = esp32_violations([infer_use(name, gpio)])
    assert any(needle in p for p in problems), problems


def test_input_only_pin_needs_an_external_pullup_on_the_board():
    use = [infer_use("KEYPAD_COL1", 36)]
    assert esp32_violations(use, {36: NetFacts("KEYPAD_COL1", pullup=True)}) == []
    assert any("no internal pull-up" in p for p in esp32_violations(use, {36: NetFacts("KEYPAD_COL1")}))
    # an analogue divider needs no pull-up
    assert esp32_violations([PinUse("VSENSE", 35, "in", "adc")], {35: NetFacts("VSENSE")}) == []


@pytest.mark.parametrize("gpio,facts,needle", [
    (12, NetFacts("X", pullup=True), "must be low"),
    (2, NetFacts("X", pullup=True), "must be low"),
    (0, NetFacts("X", pulldown=True), "must be high"),
    (15, NetFacts("X", pulldown=True), "must be high"),
    (5, NetFacts("X", drivers=("U9.OUT",)), "driven at boot by U9.OUT"),
    (2, NetFacts("X", drives_lock=True), "drives a lock"),
])
def test_strapping_pins_pulled_the_wrong_way(gpio, facts, needle):
    problems = esp32_violations([PinUse("X", gpio, "io")], {gpio: facts})
    assert any(needle in p for p in problems), problems


def test_strapping_pins_used_the_right_way_pass():
    facts = {0: NetFacts("BOOT", pullup=True), 2: NetFacts("LED", pulldown=True), 15: NetFacts("X", pullup=True)}
    uses = [PinUse("BOOT", 0, "in"), PinUse("LED", 2, "out"), PinUse("X", 15, "in")]
    assert esp32_violations(uses, facts) == []


NETLIST = """(export (version "E")
  (components (comp (ref "U1")) (comp (ref "U2")) (comp (ref "R1")))
  (nets
    (net (code 1) (name "A")
      (node (ref "U1") (pin "1") (pintype "OUTPUT")) (node (ref "U2") (pin "3") (pintype "INPUT")))
    (net (code 2) (name "B")
      (node (ref "R1") (pin "1") (pintype "PASSIVE")) (node (ref "U2") (pin "4") (pintype "INPUT")))))
"""


def test_netlist_erc_passes_a_sound_netlist_and_flags_broken_ones():
    refs, nets = read_netlist(NETLIST)
    assert refs == {"U1", "U2", "R1"} and nets["A"][0] == ("U1", "1", "OUTPUT")
    assert netlist_erc(refs, nets) == []
    fighting = NETLIST.replace('(pin "3") (pintype "INPUT")', '(pin "3") (pintype "OUTPUT")')
    assert any("drive each other" in e for e in netlist_erc(*read_netlist(fighting)))
    dangling = NETLIST.replace('(node (ref "R1") (pin "1") (pintype "PASSIVE")) ', "")
    assert any("only U2.4" in e for e in netlist_erc(*read_netlist(dangling)))
