"""The controller board as generated: ERC, netlist, BOM, drawings, and its pin-by-pin match with pins.py."""

import csv
import shutil

from skidl import Net, Pin

from jincun import hwtools


def test_board_erc_has_no_errors(hw_result):
    assert hw_result["erc_errors"] == 0
    assert hw_result["netlist_erc_errors"] == 0, hw_result["netlist_errors"]


def test_firmware_pin_map_matches_the_board_pin_by_pin(hw_result):
    assert hw_result["firmware_pins"], "firmware/jc/pins.py defines no GPIO constants"
    assert hw_result["mismatches"] == []
    assert hw_result["pin_mismatches"] == 0
    # every board net is claimed by exactly one firmware constant on the same GPIO
    assert sorted(hw_result["board_pins"].values()) == sorted(set(hw_result["firmware_pins"].values()))


def test_esp32_pin_rules_hold_on_board_and_firmware(hw_result):
    assert hw_result["violations"] == []
    assert hw_result["strapping_violations"] == 0
    used = set(hw_result["board_pins"].values())
    assert not used & hwtools.FLASH_GPIOS
    assert not used & set(hwtools.STRAPPING_LEVEL)


def test_netlist_holds_every_part_and_esp32_net(hw_result):
    text = open(hw_result["outputs"]["netlist"], encoding="utf-8").read()
    refs, nets = hwtools.read_netlist(text)
    assert len(refs) == hw_result["parts"]
    for net, gpio in hw_result["board_pins"].items():
        esp_pin = {"U2"} & {r for r, _, _ in nets[net]}
        assert esp_pin, f"net {net} (GPIO{gpio}) does not reach the ESP32 module"
    # per compartment: gate driver to a MOSFET, flyback diode from the lock's low side to VIN
    for k in range(1, hw_result["compartments"] + 1):
        assert len(nets[f"LOCK_N{k}"]) == 3  # MOSFET drain, flyback anode, connector LOCK-
        assert any(r.startswith("U") for r, _, _ in nets[f"DOOR{k}"])
        assert any(r.startswith("U") for r, _, _ in nets[f"OCC{k}"])


def test_bom_lists_every_part_with_part_number_and_cost(hw_result):
    with open(hw_result["outputs"]["bom"], encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == hw_result["bom_lines"] > 20
    assert sum(int(r["qty"]) for r in rows) == hw_result["parts"]
    assert len({r["mpn"] for r in rows}) == len(rows)
    for r in rows:
        assert r["mpn"] and r["manufacturer"] and float(r["unit_cost_cny"]) > 0, r
    mpns = {r["mpn"] for r in rows}
    assert {"ESP32-WROOM-32E-N4", "MCP23017-E/SO", "SP3485EN-L/TR", "LMR16030SDDAR"} <= mpns


def test_drawings_show_every_connector(hw_result):
    svg = open(hw_result["outputs"]["wiring_svg"], encoding="utf-8").read()
    for label in ("PWR_IN", "C1", "KEYPAD", "RS485_IN", "RS485_OUT", "PROG", "OLED", "LOCK+", "SENSE", "ROW1"):
        assert label in svg
    if shutil.which("node"):
        sheet = open(hw_result["outputs"]["sheet_compartment1_svg"], encoding="utf-8").read()
        assert "LOCK_DRV1" in sheet and "<svg" in sheet


def test_erc_catches_two_outputs_on_one_net(fresh_board):
    circuit, _, parts = fresh_board
    rogue = parts.make(parts._template("DRV", "U", [(1, "OUT", Pin.types.OUTPUT), (2, "GND", Pin.types.PWRIN)],
                                       "rogue driver"), parts.U_SP3485)
    rogue["OUT"] += Net.get("RS485_TX")
    rogue["GND"] += Net.get("GND")
    errors, _, report = hwtools._erc(circuit)
    assert errors >= 1 and "RS485_TX" in report


def test_board_model_sees_a_pullup_on_a_strapping_pin(fresh_board):
    circuit, board, parts = fresh_board
    esp = next(p for p in circuit.parts if p.name == "ESP32-WROOM-32E")
    for pin in esp.pins:  # free GPIO12 from the no-connect net and hang a pull-up on it
        if pin.name == "IO12":
            pin.disconnect()
    net = Net("SPARE12")
    esp["IO12"] += net
    parts.make(parts.RESISTOR, parts.resistor("10k"), "10k", a=Net.get("+3V3"), b=net)
    model = hwtools.board_model(circuit, board, parts)
    assert model.facts[12].pullup
    problems = hwtools.esp32_violations(model.uses, model.facts)
    assert any("GPIO12" in p and "must be low" in p for p in problems)


def test_lock_drive_is_recognised_from_the_netlist(fresh_board):
    circuit, board, parts = fresh_board
    model = hwtools.board_model(circuit, board, parts)
    assert not any(u.role == "lock" for u in model.uses)  # locks hang on the expanders, not the ESP32
    esp = next(p for p in circuit.parts if p.name == "ESP32-WROOM-32E")
    esp["IO2"].disconnect()
    esp["IO2"] += Net.get("LOCK_DRV1")
    model = hwtools.board_model(circuit, board, parts)
    assert model.facts[2].drives_lock
    assert any("GPIO2" in p and "drives a lock" in p for p in hwtools.esp32_violations(model.uses, model.facts))


def test_a_24_compartment_build_adds_expanders_and_stays_clean():
    circuit, board, _ = hwtools.build_board(24)
    expanders = sorted(str(p.value) for p in circuit.parts if p.name == "MCP23017")
    assert expanders == [f"MCP23017@0x{a:02X}" for a in range(0x20, 0x26)]
    assert board.expander_channel("OCC", 24, 24) == (0x25, "GPA7")
    errors, _, report = hwtools._erc(circuit)
    assert errors == 0, report


def test_board_numbers_read_from_the_wiring_match_pins_py(hw_result):
    consts = hw_result["board_constants"]
    assert consts == {"EXP_LOCK_ADDR": 0x20, "EXP_DOOR_ADDR": 0x21, "EXP_OCC_ADDR": 0x22,
                      "COMPARTMENTS_PER_BOARD": 12, "VSENSE_DIVIDER_RATIO": 11}
    pin_map = hwtools.parse_pin_map(open(hwtools.PINS_PY, encoding="utf-8").read())
    assert hwtools.compare_constants(pin_map, consts) == []


def test_a_wrong_expander_address_in_pins_py_is_caught(fresh_board, tmp_path):
    circuit, _, _ = fresh_board
    src = open(hwtools.PINS_PY, encoding="utf-8").read().replace("EXP_DOOR_ADDR = const(0x21)",
                                                                 "EXP_DOOR_ADDR = const(0x23)")
    assert "0x23" in src
    problems = hwtools.compare_constants(hwtools.parse_pin_map(src), hwtools.board_constants(circuit))
    assert problems == ["firmware EXP_DOOR_ADDR = 35 but the board has 33"]


def test_check_fails_on_a_deliberately_wrong_pin_map(tmp_path):
    wrong = tmp_path / "pins.py"
    wrong.write_text(open(hwtools.PINS_PY, encoding="utf-8").read()
                     .replace("LED_STATUS = const(26)", "LED_STATUS = const(34)")
                     .replace("I2C_SDA = const(21)", "I2C_SDA = const(12)"), encoding="utf-8")
    result = hwtools.check(out_dir=tmp_path / "out", pins_path=wrong)
    assert result["pin_mismatches"] == 3
    assert any("LED_STATUS = GPIO34" in m for m in result["mismatches"])
    assert any("I2C_SDA = GPIO12" in m for m in result["mismatches"])
    assert any("GPIO34 is given to" in m for m in result["mismatches"])
    assert any("input-only" in v and "LED_STATUS" in v for v in result["violations"])
    assert result["strapping_violations"] >= 1


def test_design_values_hold(hw_result):
    design = hw_result["design"]
    assert design["problems"] == [] and hw_result["design_problems"] == 0
    assert abs(design["buck_vout"] - 3.3) < 0.05
    assert design["vsense_at_vin_max"] < hwtools.ADC_FULL_SCALE


def test_design_checks_catch_a_missing_gate_pulldown_and_a_wrong_feedback(fresh_board):
    circuit, _, _ = fresh_board
    gate3 = Net.get("LOCK_G3")
    pulldown = next(p.part for p in gate3.pins if p.part.name == "R" and str(p.part.value) == "100k")
    for pin in pulldown.pins:
        pin.disconnect()
    fb_top = next(p.part for p in Net.get("BUCK_FB").pins if p.part.name == "R" and str(p.part.value) == "34k")
    fb_top.value = "47k"
    problems = hwtools.design_checks(circuit)["problems"]
    assert any("LOCK_G3" in p and "pulldown" in p for p in problems)
    assert any("3.3 V rail set to 4.275 V" in p for p in problems)


def test_supply_monitor_on_adc2_is_a_violation():
    assert any("ADC1" in p for p in hwtools.esp32_violations([hwtools.infer_use("VSENSE", 25)]))
