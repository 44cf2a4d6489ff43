"""Controller board tooling: regenerate the schematic outputs and check the board against the firmware pin map.

The pin-map reader and the ESP32 rule checker are pure functions over plain data; `check()` is the thin
I/O shell that builds the SKiDL board, writes hardware/schematics/out/ and returns the summary.
"""

from __future__ import annotations

import ast
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

log = logging.getLogger("jincun.hw")

REPO = Path(__file__).resolve().parents[1]
SCHEMATICS = REPO / "hardware" / "schematics"
OUT = SCHEMATICS / "out"
PINS_PY = REPO / "firmware" / "jc" / "pins.py"
NETLISTSVG = SCHEMATICS / "node_modules" / "netlistsvg" / "bin" / "netlistsvg.js"
EXTERNAL_TIMEOUT_S = 120


class HwError(Exception):
    """Base of every error raised by the board tooling."""


class PinMapError(HwError):
    """firmware/jc/pins.py cannot be read as a pin map."""


class BoardError(HwError):
    """The board description could not be built or exported."""


# --- ESP32-WROOM-32E pin facts -----------------------------------------------------------------------------
ESP32_GPIOS = frozenset(list(range(0, 24)) + [25, 26, 27] + list(range(32, 40))) - {20}
FLASH_GPIOS = frozenset(range(6, 12))
INPUT_ONLY_GPIOS = frozenset(range(34, 40))
UART0_GPIOS = frozenset({1, 3})
ADC1_GPIOS = frozenset(range(32, 40))  # ADC2 stops working while Wi-Fi is on
# Level each strapping pin must see at reset for a normal boot from SPI flash at 3.3 V.
STRAPPING_LEVEL = {0: "high", 2: "low", 5: "high", 12: "low", 15: "high"}
PROGRAMMING_NAMES = frozenset({"BOOT", "UART0_TXD", "UART0_RXD"})


# --- reading pins.py ---------------------------------------------------------------------------------------
def parse_pin_map(source: str) -> dict[str, int | tuple[int, ...]]:
    """Top-level integer constants and integer tuples/lists of a MicroPython module, read without running it.

    Accepts `X = 5`, `X = const(5)`, `X = (1, 2)`, `X = [A, B]` (names defined earlier) and `A = B = 3`;
    anything else is ignored. A syntax error raises PinMapError.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise PinMapError(f"pins.py does not parse: {exc}") from exc
    values: dict[str, int | tuple[int, ...]] = {}

    def value_of(node):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "const" \
                and len(node.args) == 1:
            return value_of(node.args[0])
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name) and isinstance(values.get(node.id), int):
            return values[node.id]
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [value_of(e) for e in node.elts]
            if items and all(isinstance(i, int) for i in items):
                return tuple(items)
        return None

    for stmt in tree.body:
        targets, value = [], None
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        v = value_of(value) if value is not None else None
        if v is None:
            continue
        for t in targets:
            if isinstance(t, ast.Name):
                values[t.id] = v
    return values


# Name tokens that mark a constant as something other than a GPIO number.
_NOT_PIN_TOKENS = frozenset(
    "ADDR ADDRESS FREQ HZ KHZ BAUD BAUDRATE ID NUM COUNT MAX MIN MS US SECS TIMEOUT BITS BIT WIDTH BUS ATTEN "
    "DIV DIVIDER RATIO MV VOLT VOLTS OHM OHMS LEN SIZE VERSION CHANNEL CH PERIOD DUTY LEVEL ACTIVE POLARITY "
    "INVERT INVERTED MASK BASE N COMPARTMENTS PER".split()
)


def _tokens(name: str) -> list[str]:
    return [t for t in name.upper().replace("-", "_").split("_") if t]


def firmware_pins(pin_map: dict[str, int | tuple[int, ...]]) -> dict[str, int]:
    """The GPIO constants of a parsed pin map, sequences flattened to NAME[1], NAME[2], ... (1-based)."""
    pins: dict[str, int] = {}
    for name, value in pin_map.items():
        if name.startswith("_") or _NOT_PIN_TOKENS & set(_tokens(name)):
            continue
        if isinstance(value, int):
            pins[name] = value
        else:
            for i, gpio in enumerate(value, start=1):
                pins[f"{name}[{i}]"] = gpio
    return pins


# Token spellings folded onto one word, and tokens that carry no function.
_SYNONYMS = {
    "TXD": "TX", "RXD": "RX", "ROWS": "ROW", "COLS": "COL", "COLUMN": "COL", "COLUMNS": "COL",
    "LOCKS": "LOCK", "SOLENOID": "LOCK", "DOORS": "DOOR", "BUZ": "BUZZER", "BUZZ": "BUZZER", "BEEP": "BUZZER",
    "BEEPER": "BUZZER", "IRQ": "INT", "INTR": "INT", "INTERRUPT": "INT", "MCP": "EXP", "IOX": "EXP",
    "EXPANDER": "EXP", "485": "RS485", "UART": "RS485", "UART1": "RS485", "UART2": "RS485", "DERE": "DE",
    "REDE": "DE", "DIR": "DE", "TXEN": "DE", "LEDS": "LED", "R": "RED", "G": "GREEN", "GRN": "GREEN",
    "OCCUPANCY": "OCC", "IR": "OCC",
}
_FILLER = frozenset({"PIN", "PINS", "GPIO", "IO", "P", "KEYPAD", "KP", "KEY", "KEYS", "I2C", "STATUS", "STAT",
                     "SW", "SWITCH", "SENSOR"})
# Whole-name aliases after folding (sorted tokens joined by "_").
_ALIASES = {
    "INT": "EXP_INT", "VIN": "VSENSE", "SENSE_VIN": "VSENSE", "ADC_VIN": "VSENSE", "SUPPLY": "VSENSE",
    "VSUPPLY": "VSENSE", "ADC_SUPPLY": "VSENSE", "VBUS": "VSENSE", "ADC": "VSENSE", "ADC_VSENSE": "VSENSE",
}


def function_key(name: str) -> str:
    """Canonical function of a pin name, so KEYPAD_ROWS[2], ROW2 and PIN_KP_ROW_2 all read ROW2."""
    index = ""
    if name.endswith("]"):
        name, index = name[:-1].split("[")
    tokens = []
    for tok in _tokens(name):
        head = tok.rstrip("0123456789")
        digits = tok[len(head):]
        if head and digits and head not in ("RS", "UART", "I2C"):
            tok, index = head, index or digits
        elif not head and digits and tok != "485":
            index = index or digits
            continue
        tok = _SYNONYMS.get(tok, tok)
        if tok not in _FILLER:
            tokens.append(tok)
    if "RS485" not in tokens and tokens in (["TX"], ["RX"], ["DE"]):
        tokens.append("RS485")
    key = "_".join(sorted(tokens))
    key = _ALIASES.get(key, key)
    return key + (str(int(index)) if index else "")


def compare_pins(firmware: dict[str, int], board: dict[str, int]) -> list[str]:
    """Mismatches between firmware pin constants and board GPIO nets ({name: gpio} on both sides)."""
    problems = []
    fw_by_key: dict[str, tuple[str, int]] = {}
    for name, gpio in sorted(firmware.items()):
        key = function_key(name)
        if key in fw_by_key:
            problems.append(f"firmware: {name} and {fw_by_key[key][0]} both name function {key}")
        fw_by_key[key] = (name, gpio)
    board_by_key = {function_key(net): (net, gpio) for net, gpio in board.items()}
    for key, (name, gpio) in sorted(fw_by_key.items()):
        if key not in board_by_key:
            problems.append(f"firmware {name} = GPIO{gpio}: the board has no {key} net")
        elif board_by_key[key][1] != gpio:
            net, bgpio = board_by_key[key]
            problems.append(f"firmware {name} = GPIO{gpio} but the board wires net {net} to GPIO{bgpio}")
    for key, (net, gpio) in sorted(board_by_key.items()):
        if key not in fw_by_key:
            problems.append(f"board net {net} on GPIO{gpio} has no constant in pins.py")
    by_gpio: dict[int, list[str]] = {}
    for name, gpio in firmware.items():
        by_gpio.setdefault(gpio, []).append(name)
    for gpio, names in sorted(by_gpio.items()):
        if len(names) > 1:
            problems.append(f"firmware: GPIO{gpio} is given to {', '.join(sorted(names))}")
    return problems


# --- ESP32 pin rules ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PinUse:
    """One function on one GPIO: direction seen from the ESP32 ('in', 'out', 'io') and role ('lock', 'adc')."""

    name: str
    gpio: int
    direction: str
    role: str = ""


@dataclass(frozen=True)
class NetFacts:
    """What the board hangs on a GPIO's net: resistors to the rails and other parts' driving pins."""

    net: str
    pullup: bool = False
    pulldown: bool = False
    drivers: tuple[str, ...] = ()
    drives_lock: bool = False


_OUT_TOKENS = frozenset({"LOCK", "RELAY", "LED", "RED", "GREEN", "BLUE", "AMBER", "BUZZER", "ROW", "TX", "DE",
                         "SCL", "RESET", "RST"})
_IN_TOKENS = frozenset({"COL", "RX", "INT", "DOOR", "OCC", "VSENSE", "BTN", "BUTTON", "BOOT", "SENSE"})


def infer_use(name: str, gpio: int) -> PinUse:
    """Direction and role of a firmware pin constant, read from its name."""
    tokens = set(function_key(name).rstrip("0123456789").split("_"))
    role = "lock" if tokens & {"LOCK", "RELAY"} else ("adc" if "VSENSE" in tokens else "")
    if tokens & _OUT_TOKENS:
        direction = "out"
    elif tokens & _IN_TOKENS:
        direction = "in"
    else:
        direction = "io"
    return PinUse(name, gpio, direction, role)


def esp32_violations(uses: list[PinUse], facts: dict[int, NetFacts] | None = None) -> list[str]:
    """ESP32 pin-rule violations of these pin uses; `facts` (board nets by GPIO) enables the wiring rules."""
    problems = []
    for u in uses:
        g, f = u.gpio, (facts or {}).get(u.gpio)
        where = f"{u.name} on GPIO{g}"
        if g not in ESP32_GPIOS:
            problems.append(f"{where}: the ESP32-WROOM-32E has no such GPIO")
            continue
        if g in FLASH_GPIOS:
            problems.append(f"{where}: GPIO6-11 belong to the module's SPI flash")
            continue
        if g in UART0_GPIOS and u.name not in PROGRAMMING_NAMES:
            problems.append(f"{where}: GPIO1/3 are UART0, the boot console and programming port")
        if g in INPUT_ONLY_GPIOS:
            if u.direction != "in" or u.role == "lock":
                problems.append(f"{where}: GPIO34-39 are input-only and cannot drive an output")
            elif u.role != "adc" and facts is not None and not (f and f.pullup):
                problems.append(f"{where}: GPIO34-39 have no internal pull-up and the board fits no external one")
        if u.role == "adc" and g not in ADC1_GPIOS:
            problems.append(f"{where}: analogue input must be on ADC1 (GPIO32-39); ADC2 is lost while Wi-Fi runs")
        if g in STRAPPING_LEVEL:
            level = STRAPPING_LEVEL[g]
            if u.role == "lock" or (f and f.drives_lock):
                problems.append(f"{where}: strapping pin drives a lock (it toggles during boot)")
            if f and level == "low" and f.pullup:
                problems.append(f"{where}: strapping pin must be low at boot but net {f.net} is pulled up")
            if f and level == "high" and f.pulldown:
                problems.append(f"{where}: strapping pin must be high at boot but net {f.net} is pulled down")
            if f and f.drivers:
                problems.append(f"{where}: strapping pin is driven at boot by {', '.join(f.drivers)}")
    return problems


# --- independent ERC over the written KiCad netlist ---------------------------------------------------------
def parse_sexpr(text: str):
    """Parse one KiCad s-expression into nested lists of strings."""
    stack: list[list] = []
    cur: list = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "(":
            stack.append(cur)
            cur = []
            i += 1
        elif ch == ")":
            if not stack:
                raise BoardError("netlist: unbalanced ')'")
            done, cur = cur, stack.pop()
            cur.append(done)
            i += 1
        elif ch == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            cur.append("".join(buf))
            i = j + 1
        elif ch.isspace():
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '()"':
                j += 1
            cur.append(text[i:j])
            i = j
    if stack:
        raise BoardError("netlist: unbalanced '('")
    return cur[0] if cur else []


def read_netlist(text: str) -> tuple[set[str], dict[str, list[tuple[str, str, str]]]]:
    """Component refs and nets {name: [(ref, pin, pintype)]} of a KiCad netlist."""
    root = parse_sexpr(text)

    def children(node, tag):
        return [c for c in node if isinstance(c, list) and c and c[0] == tag]

    def value(node, tag, default=""):
        found = children(node, tag)
        return found[0][1] if found and len(found[0]) > 1 else default

    refs = {value(c, "ref") for sec in children(root, "components") for c in children(sec, "comp")}
    nets = {}
    for sec in children(root, "nets"):
        for net in children(sec, "net"):
            nets[value(net, "name")] = [(value(nd, "ref"), value(nd, "pin"), value(nd, "pintype", "UNSPEC"))
                                        for nd in children(net, "node")]
    return refs, nets


_DRIVES = {"OUTPUT", "PWROUT", "POWER_OUT", "OUTPUT_PWR"}
_NEEDS_SOURCE = {"INPUT", "PWRIN", "POWER_IN", "INPUT_PWR"}


def netlist_erc(refs: set[str], nets: dict[str, list[tuple[str, str, str]]]) -> list[str]:
    """Errors in a netlist file: fighting outputs, dangling one-pin nets, inputs nothing can drive, unknown refs."""
    errors = []
    for name, nodes in sorted(nets.items()):
        types = [t.upper() for _, _, t in nodes]
        drivers = [f"{r}.{p}" for r, p, t in nodes if t.upper() in _DRIVES]
        if len(drivers) > 1:
            errors.append(f"net {name}: outputs {', '.join(drivers)} drive each other")
        if len(nodes) == 1 and types[0] != "NOCONNECT":
            errors.append(f"net {name}: only {nodes[0][0]}.{nodes[0][1]} is on it")
        if types and all(t in _NEEDS_SOURCE for t in types) and name not in ("GND", "+3V3", "VIN"):
            errors.append(f"net {name}: inputs only, nothing drives it")
        errors += [f"net {name}: unknown part {r}" for r, _, _ in nodes if r not in refs]
    return errors


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


def compare_constants(pin_map: dict, consts: dict[str, int]) -> list[str]:
    """Board numbers that pins.py states differently (a number pins.py leaves out is not an error)."""
    return [f"firmware {k} = {pin_map[k]!r} but the board has {v!r}" for k, v in sorted(consts.items())
            if k in pin_map and pin_map[k] != v]


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
