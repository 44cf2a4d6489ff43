"""Controller board rules: the firmware pin map, the ESP32's pin rules and the netlist re-check.

Pure functions over plain data (no SKiDL, no files): jincun/hwtools.py builds the board and feeds them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

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


def compare_constants(pin_map: dict, consts: dict[str, int]) -> list[str]:
    """Board numbers that pins.py states differently (a number pins.py leaves out is not an error)."""
    return [f"firmware {k} = {pin_map[k]!r} but the board has {v!r}" for k, v in sorted(consts.items())
            if k in pin_map and pin_map[k] != v]
