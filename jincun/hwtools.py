"""Controller board tooling: regenerate the schematic outputs and check the board against the firmware pin map.

The pin-map reader, the ESP32 rule checker and the netlist re-check are pure functions over plain data in
jincun/hwrules.py; this module builds the SKiDL board, reads the firmware's view of it out of the circuit,
and `check()` is the thin I/O shell that writes hardware/schematics/out/ and returns the summary.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import json
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from jincun.hwrules import (  # the rules live there; imported here for the shell and its callers
    HwError as HwError,
    PinMapError as PinMapError,
    BoardError as BoardError,
    ESP32_GPIOS as ESP32_GPIOS,
    FLASH_GPIOS as FLASH_GPIOS,
    INPUT_ONLY_GPIOS as INPUT_ONLY_GPIOS,
    UART0_GPIOS as UART0_GPIOS,
    ADC1_GPIOS as ADC1_GPIOS,
    STRAPPING_LEVEL as STRAPPING_LEVEL,
    PROGRAMMING_NAMES as PROGRAMMING_NAMES,
    parse_pin_map as parse_pin_map,
    firmware_pins as firmware_pins,
    function_key as function_key,
    compare_pins as compare_pins,
    PinUse as PinUse,
    NetFacts as NetFacts,
    infer_use as infer_use,
    esp32_violations as esp32_violations,
    parse_sexpr as parse_sexpr,
    read_netlist as read_netlist,
    netlist_erc as netlist_erc,
    compare_constants as compare_constants,
)

log = logging.getLogger("jincun.hw")

REPO = Path(__file__).resolve().parents[1]
SCHEMATICS = REPO / "hardware" / "schematics"
OUT = SCHEMATICS / "out"
PINS_PY = REPO / "firmware" / "jc" / "pins.py"
NETLISTSVG = SCHEMATICS / "node_modules" / "netlistsvg" / "bin" / "netlistsvg.js"
EXTERNAL_TIMEOUT_S = 120


# --- board model from the SKiDL circuit --------------------------------------------------------------------
@dataclass
class BoardModel:
    """The ESP32's view of the built board."""

    nets: dict[str, int] = field(default_factory=dict)  # application net name -> GPIO
    uses: list[PinUse] = field(default_factory=list)
    facts: dict[int, NetFacts] = field(default_factory=dict)


# SKiDL's own console messages land here during a run and are written to out/skidl.log by check().
_SKIDL_CONSOLE = io.StringIO()


def _load_board_modules():
    """Import the SKiDL board description from hardware/schematics (quietly: SKiDL logs to stderr on import)."""
    if str(SCHEMATICS) not in sys.path:
        sys.path.insert(0, str(SCHEMATICS))
    try:
        with contextlib.redirect_stderr(_SKIDL_CONSOLE):
            import skidl  # noqa: F401  -- must be imported while stderr is captured
            board = importlib.import_module("board")
            parts = importlib.import_module("parts")
            drawing = importlib.import_module("drawing")
    except ImportError as exc:
        raise BoardError(f"cannot load the board description ({exc}); install it with: pip install skidl") from exc
    _drop_skidl_log_files()
    return board, parts, drawing


def _drop_skidl_log_files() -> None:
    """Detach the .log/.erc files SKiDL opens in the working folder at import; its messages reach skidl.log."""
    from skidl.logger import erc_logger, rt_logger

    for logger in (rt_logger, erc_logger):
        for handler in list(logger.log_file_handlers):
            name, handler.filename = handler.filename, None  # we delete the file ourselves, it may be gone
            logger.removeHandler(handler)
            handler.close()
            if name:
                Path(name).unlink(missing_ok=True)


def build_board(compartments: int | None = None):
    """Build the board into SKiDL's default circuit; returns (circuit, board module, parts module)."""
    board, parts, _ = _load_board_modules()
    with contextlib.redirect_stderr(_SKIDL_CONSOLE):
        circuit = board.build(compartments or board.COMPARTMENTS)
    circuit._no_files = True  # no .net/_sklib.py files in the working folder (log files are already detached)
    return circuit, board, parts


def board_model(circuit, board_module, parts_module) -> BoardModel:
    """GPIO nets, pin uses and net facts of the ESP32 in a built circuit."""
    from skidl import Pin

    esp = next(p for p in circuit.parts if p.name == "ESP32-WROOM-32E")
    gpio_of_pin = {pin: g for g, pin in parts_module.ESP32_GPIO_PIN.items()}
    declared = {e.net: e for e in board_module.ESP32_NETS + board_module.PROGRAMMING_NETS}
    driving = {Pin.types.OUTPUT, Pin.types.TRISTATE, Pin.types.PWROUT, Pin.types.OPENCOLL, Pin.types.OPENEMIT}
    model = BoardModel()
    for pin in esp.pins:
        if pin.name not in gpio_of_pin or pin.net is None or pin.net.name.startswith("__NOCONNECT"):
            continue
        gpio, net = gpio_of_pin[pin.name], pin.net
        pullup = pulldown = drives_lock = False
        drivers = []
        for other in net.pins:
            if other.part is esp:
                continue
            if other.part.name == "NMOS" and other.name == "G":
                drives_lock = True
            elif other.part.name == "R":
                far = next(p for p in other.part.pins if p is not other).net
                if far is None:
                    continue
                pullup |= far.name == "+3V3"
                pulldown |= far.name == "GND"
                drives_lock |= any(p.part.name == "NMOS" and p.name == "G" for p in far.pins)
            elif other.func in driving:
                drivers.append(f"{other.part.ref}.{other.name}")
        model.facts[gpio] = NetFacts(net.name, pullup, pulldown, tuple(sorted(drivers)), drives_lock)
        spec = declared.get(net.name)
        direction = {Pin.types.INPUT: "in", Pin.types.OUTPUT: "out"}.get(pin.func, "io")
        model.uses.append(PinUse(net.name, gpio, direction, "lock" if drives_lock else (spec.role if spec else "")))
        if net.name not in PROGRAMMING_NAMES:
            model.nets[net.name] = gpio
    return model


def _ohms(value: str) -> float:
    mult = {"k": 1e3, "M": 1e6}.get(value[-1:], 1.0)
    return float(value[:-1] if value[-1:] in ("k", "M") else value) * mult


def board_constants(circuit) -> dict[str, int]:
    """Numbers the firmware must share with the board, read from the wiring itself.

    Expander addresses come from the A0-A2 straps of the chip that carries compartment 1's lock, door and sensor
    lines; the compartment count from the compartment connectors; the divider ratio from the VSENSE resistors.
    """
    consts: dict[str, int] = {}
    nets = {n.name: n for n in circuit.nets}
    for key, net_name in (("EXP_LOCK_ADDR", "LOCK_DRV1"), ("EXP_DOOR_ADDR", "DOOR1"), ("EXP_OCC_ADDR", "OCC1")):
        chip = next((p.part for p in nets[net_name].pins if p.part.name == "MCP23017"), None) \
            if net_name in nets else None
        if chip is not None:
            straps = [chip[a].net.name == "+3V3" for a in ("A0", "A1", "A2")]
            consts[key] = 0x20 + sum(bit << i for i, bit in enumerate(straps))
    consts["COMPARTMENTS_PER_BOARD"] = sum(1 for n in nets if n.startswith("LOCK_N") and n[6:].isdigit())
    if "VSENSE" in nets:
        top = bottom = None
        for pin in nets["VSENSE"].pins:
            if pin.part.name == "R":
                far = next(p for p in pin.part.pins if p is not pin).net.name
                if far == "VIN":
                    top = _ohms(str(pin.part.value))
                elif far == "GND":
                    bottom = _ohms(str(pin.part.value))
        if top and bottom:
            consts["VSENSE_DIVIDER_RATIO"] = round((top + bottom) / bottom)
    return consts


BUCK_VREF = 0.75  # LMR16030 feedback reference, volts
ADC_FULL_SCALE = 3.1  # ESP32 ADC at 11 dB attenuation, volts
VIN_MAX = 30.0  # highest supply the board is specified for (24 V + 25 %)


def _divider(circuit, tap: str, top_net: str) -> tuple[float, float] | None:
    """(top, bottom) ohms of the resistor divider from top_net through tap to GND."""
    net = next((n for n in circuit.nets if n.name == tap), None)
    top = bottom = None
    for pin in net.pins if net else []:
        if pin.part.name != "R":
            continue
        far = next(p for p in pin.part.pins if p is not pin).net
        if far is not None and far.name == top_net:
            top = _ohms(str(pin.part.value))
        elif far is not None and far.name == "GND":
            bottom = _ohms(str(pin.part.value))
    return (top, bottom) if top and bottom else None


def design_checks(circuit) -> dict:
    """Values a reviewer works out by hand: buck output voltage, ADC headroom, lock gate pulldowns."""
    out: dict = {}
    fb = _divider(circuit, "BUCK_FB", "+3V3")
    out["buck_vout"] = round(BUCK_VREF * (1 + fb[0] / fb[1]), 3) if fb else None
    vs = _divider(circuit, "VSENSE", "VIN")
    out["vsense_at_vin_max"] = round(VIN_MAX * vs[1] / (vs[0] + vs[1]), 3) if vs else None
    gates = [n for n in circuit.nets if n.name.startswith("LOCK_G")]
    out["lock_gates_without_pulldown"] = sorted(
        n.name for n in gates if _divider(circuit, n.name, n.name.replace("LOCK_G", "LOCK_DRV")) is None)
    problems = []
    if out["buck_vout"] is None or abs(out["buck_vout"] - 3.3) > 0.1:
        problems.append(f"3.3 V rail set to {out['buck_vout']} V by the buck feedback divider")
    if out["vsense_at_vin_max"] is None or out["vsense_at_vin_max"] > ADC_FULL_SCALE:
        problems.append(f"VSENSE reads {out['vsense_at_vin_max']} V at {VIN_MAX} V in, over the ADC range")
    problems += [f"{g}: no pulldown, the lock may fire while the expander resets"
                 for g in out["lock_gates_without_pulldown"]]
    out["problems"] = problems
    return out


# --- outputs -----------------------------------------------------------------------------------------------
BOM_COLUMNS = ["line", "refs", "qty", "value", "description", "manufacturer", "mpn", "footprint",
               "unit_cost_cny", "ext_cost_cny"]


def bom_rows(circuit) -> list[dict]:
    """One BOM line per manufacturer part number, refs in natural order."""
    groups: dict[str, list] = {}
    for p in circuit.parts:
        groups.setdefault(p.fields.get("MPN", "") or f"?{p.name}:{p.value}", []).append(p)

    def natural(ref):
        head = ref.rstrip("0123456789")
        return head, int(ref[len(head):] or 0)

    rows = []
    for mpn, members in groups.items():
        members.sort(key=lambda p: natural(p.ref))
        first = members[0]
        values = {str(p.value) for p in members}
        unit = float(first.fields.get("UnitCostCNY", "0"))
        rows.append({
            "refs": " ".join(p.ref for p in members), "qty": len(members),
            "value": values.pop() if len(values) == 1 else first.description, "description": first.description,
            "manufacturer": first.fields.get("Manufacturer", ""), "mpn": mpn, "footprint": first.footprint,
            "unit_cost_cny": f"{unit:.2f}", "ext_cost_cny": f"{unit * len(members):.2f}",
        })
    rows.sort(key=lambda r: natural(r["refs"].split()[0]))
    for i, r in enumerate(rows, start=1):
        r["line"] = i
    return rows


def write_bom(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=BOM_COLUMNS)
        w.writeheader()
        w.writerows(rows)


def _erc(circuit) -> tuple[int, int, str]:
    """Run SKiDL's ERC and return (errors, warnings, report text)."""
    from skidl.logger import erc_logger

    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("ERC %(levelname)s: %(message)s"))
    erc_logger.addHandler(handler)
    try:
        with contextlib.redirect_stderr(_SKIDL_CONSOLE):
            circuit.ERC()
    finally:
        erc_logger.removeHandler(handler)
    errors = erc_logger.error.count + erc_logger.bare_error.count
    warnings = erc_logger.warning.count + erc_logger.bare_warning.count
    return errors, warnings, buf.getvalue()


def _netlist(circuit, path: Path) -> None:
    from skidl import KICAD8

    with contextlib.redirect_stderr(_SKIDL_CONSOLE):
        text = str(circuit.generate_netlist(tool=KICAD8, do_backup=False))
    if "(nets" not in text:
        raise BoardError("SKiDL produced a netlist without nets")
    path.write_text(text, encoding="utf-8")


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess | None:
    """Run an external renderer; a missing tool or failure is logged and answered with None."""
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=EXTERNAL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("hw: %s failed: %s", cmd[0], exc)
        return None
    if res.returncode != 0:
        log.warning("hw: %s exited %s: %s", cmd[0], res.returncode, res.stderr.strip()[-400:])
        return None
    return res


def ensure_netlistsvg() -> bool:
    """Install netlistsvg from hardware/schematics/package.json when it is missing and npm is there."""
    if NETLISTSVG.exists():
        return True
    npm = shutil.which("npm")
    if npm is None:
        log.warning("hw: npm not found, schematic drawing skipped")
        return False
    lock = (SCHEMATICS / "package-lock.json").exists()
    _run([npm, "ci" if lock else "install", "--no-audit", "--no-fund"], SCHEMATICS)
    return NETLISTSVG.exists()


def svg_to_png(svg: Path, png: Path) -> bool:
    """Rasterise an SVG with rsvg-convert (Debian: librsvg2-bin) when it is installed."""
    tool = shutil.which("rsvg-convert")
    if tool is None:
        log.warning("hw: rsvg-convert not found, %s not rasterised", svg.name)
        return False
    return _run([tool, "-b", "white", "-o", str(png), str(svg)], svg.parent) is not None and png.exists()


DOCS_IMG = REPO / "docs" / "img"
DOCS_PICTURES = ("wiring.svg", "wiring.png", "sheet_compartment1.svg", "sheet_compartment1.png", "sheet_power.svg",
                 "sheet_power.png")


def publish_docs_images(out_dir: Path | str = OUT, img_dir: Path | str = DOCS_IMG) -> list[Path]:
    """Copy the drawings that docs/wiring.md shows from out_dir to docs/img (after a check())."""
    out_dir, img_dir = Path(out_dir), Path(img_dir)
    img_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in DOCS_PICTURES:
        if (out_dir / name).exists():
            shutil.copyfile(out_dir / name, img_dir / f"board_{name}")
            copied.append(img_dir / f"board_{name}")
        else:
            log.warning("hw: %s was not generated, docs keep the old picture", name)
    return copied


def check(out_dir: Path | str = OUT, pins_path: Path | str = PINS_PY, compartments: int | None = None) -> dict:
    """Regenerate netlist, ERC report, BOM and drawings into out_dir and check the board against pins.py.

    erc_errors counts SKiDL's ERC plus the re-check of the written netlist; strapping_violations counts every
    ESP32 pin-rule break (strapping, input-only, flash, UART0) on the board or in pins.py.
    """
    out_dir, pins_path = Path(out_dir), Path(pins_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    circuit, board_mod, parts_mod = build_board(compartments)
    drawing_mod = _load_board_modules()[2]
    n = compartments or board_mod.COMPARTMENTS
    erc_errors, erc_warnings, erc_report = _erc(circuit)
    (out_dir / "erc.txt").write_text(erc_report, encoding="utf-8")
    _netlist(circuit, out_dir / "board.net")
    refs, nets = read_netlist((out_dir / "board.net").read_text(encoding="utf-8"))
    netlist_errors = netlist_erc(refs, nets)
    rows = bom_rows(circuit)
    write_bom(rows, out_dir / "bom.csv")
    model = board_model(circuit, board_mod, parts_mod)
    design = design_checks(circuit)

    if pins_path.exists():
        try:
            source = pins_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PinMapError(f"cannot read {pins_path}: {exc}") from exc
        pin_map = parse_pin_map(source)
        fw = firmware_pins(pin_map)
        mismatches = compare_pins(fw, model.nets) + compare_constants(pin_map, board_constants(circuit))
        fw_uses = [infer_use(name, gpio) for name, gpio in fw.items()]
    else:
        fw, fw_uses = {}, []
        mismatches = [f"{pins_path} does not exist"]
    violations = esp32_violations(model.uses, model.facts)
    violations += [v for v in esp32_violations(fw_uses, model.facts) if v not in violations]

    drawings = drawing_mod.render_all(circuit, out_dir, NETLISTSVG if ensure_netlistsvg() else None, _run,
                                      svg_to_png)
    result = {
        "erc_errors": erc_errors + len(netlist_errors),
        "pin_mismatches": len(mismatches),
        "design_problems": len(design["problems"]),
        "strapping_violations": len(violations),
        "bom_lines": len(rows),
        "erc_warnings": erc_warnings,
        "skidl_erc_errors": erc_errors,
        "netlist_erc_errors": len(netlist_errors),
        "schematic_sheets": sum(1 for k in drawings if k.startswith("sheet_") and k.endswith("_svg")),
        "parts": len(circuit.parts),
        "nets": len({net.name for net in circuit.nets if not net.name.startswith("__NOCONNECT")}),
        "compartments": n,
        "bom_cost_cny": round(sum(float(r["ext_cost_cny"]) for r in rows), 2),
        "firmware_pins": fw,
        "board_constants": board_constants(circuit),
        "design": design,
        "board_pins": model.nets,
        "mismatches": mismatches,
        "violations": violations,
        "netlist_errors": netlist_errors,
        "outputs": {k: str(v) for k, v in {
            "netlist": out_dir / "board.net", "erc": out_dir / "erc.txt", "bom": out_dir / "bom.csv",
            "skidl_log": out_dir / "skidl.log",
            **drawings}.items()},
    }
    # SKiDL's console chatter goes to a file per run, so the buffer never grows past one run.
    (out_dir / "skidl.log").write_text(_SKIDL_CONSOLE.getvalue(), encoding="utf-8")
    _SKIDL_CONSOLE.seek(0)
    _SKIDL_CONSOLE.truncate()
    (out_dir / "check.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return result
