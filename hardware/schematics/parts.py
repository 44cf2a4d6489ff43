"""Part library of the locker controller board: SKiDL-native symbols with order data, no KiCad install needed."""

from dataclasses import dataclass

from skidl import SKIDL, TEMPLATE, Part, Pin

T = Pin.types


@dataclass(frozen=True)
class Order:
    """What the BOM says about a part: who makes it, their number and a rough unit price in CNY."""

    manufacturer: str
    mpn: str
    cost_cny: float
    footprint: str


def _template(name, ref_prefix, pins, description):
    """Build a reusable SKiDL part template from (number, name, type) triples."""
    return Part(
        name=name,
        tool=SKIDL,
        dest=TEMPLATE,
        ref_prefix=ref_prefix,
        description=description,
        pins=[Pin(num=str(num), name=pname, func=func) for num, pname, func in pins],
    )


# Schematic sheet that new parts are drawn on; the board sets it block by block.
sheet = "main"


def make(template, order: Order, value: str = "", **nets):
    """Instantiate a part, stamp its order data and connect pins by name: make(R, ..., a=net1, b=net2)."""
    part = template(value=value or order.mpn)
    part.fields["Sheet"] = sheet
    part.tag = f"{sheet}:{part.ref}"  # stable tag -> stable timestamps in the netlist
    part.footprint = order.footprint
    part.fields["Manufacturer"] = order.manufacturer
    part.fields["MPN"] = order.mpn
    part.fields["UnitCostCNY"] = f"{order.cost_cny:.2f}"
    for pin_name, net in nets.items():
        part[pin_name] += net
    return part


# --- two-terminal passives -------------------------------------------------------------------------------
RESISTOR = _template("R", "R", [(1, "a", T.PASSIVE), (2, "b", T.PASSIVE)], "Resistor")
CAPACITOR = _template("C", "C", [(1, "a", T.PASSIVE), (2, "b", T.PASSIVE)], "Capacitor")
CAP_POLAR = _template("CP", "C", [(1, "pos", T.PASSIVE), (2, "neg", T.PASSIVE)], "Polarised capacitor")
INDUCTOR = _template("L", "L", [(1, "a", T.PASSIVE), (2, "b", T.PASSIVE)], "Inductor")
FUSE = _template("F", "F", [(1, "a", T.PASSIVE), (2, "b", T.PASSIVE)], "Resettable fuse")
DIODE = _template("D", "D", [(1, "K", T.PASSIVE), (2, "A", T.PASSIVE)], "Diode")
LED = _template("LED", "D", [(1, "K", T.PASSIVE), (2, "A", T.PASSIVE)], "Light-emitting diode")
TVS_BIDIR = _template("TVS", "D", [(1, "a", T.PASSIVE), (2, "b", T.PASSIVE)], "Bidirectional TVS diode")
ESD = _template("ESD", "D", [(1, "io", T.PASSIVE), (2, "gnd", T.PASSIVE)], "ESD protection diode")
BUZZER = _template("BUZZER", "BZ", [(1, "pos", T.PASSIVE), (2, "neg", T.PASSIVE)], "Magnetic buzzer")
BUTTON = _template("SW_PUSH", "SW", [(1, "a", T.PASSIVE), (2, "b", T.PASSIVE)], "Tactile push button")

# --- discrete semiconductors -----------------------------------------------------------------------------
NMOS = _template("NMOS", "Q", [(1, "G", T.INPUT), (2, "S", T.PASSIVE), (3, "D", T.PASSIVE)], "N-channel MOSFET")
PMOS = _template("PMOS", "Q", [(1, "G", T.INPUT), (2, "S", T.PASSIVE), (3, "D", T.PASSIVE)], "P-channel MOSFET")
NPN = _template("NPN", "Q", [(1, "B", T.PASSIVE), (2, "E", T.PASSIVE), (3, "C", T.PASSIVE)], "NPN transistor")
TVS_RS485 = _template(
    "SM712", "D", [(1, "io1", T.PASSIVE), (2, "io2", T.PASSIVE), (3, "gnd", T.PASSIVE)], "RS-485 line TVS array"
)

# --- integrated circuits ---------------------------------------------------------------------------------
# ESP32-WROOM-32E module, 38 castellated pins + exposed pad; names follow the Espressif datasheet.
_ESP32_PINS = [
    (1, "GND1", T.PWRIN), (2, "3V3", T.PWRIN), (3, "EN", T.INPUT),
    (4, "IO36", T.INPUT), (5, "IO39", T.INPUT), (6, "IO34", T.INPUT), (7, "IO35", T.INPUT),
    (8, "IO32", T.BIDIR), (9, "IO33", T.BIDIR), (10, "IO25", T.BIDIR), (11, "IO26", T.BIDIR),
    (12, "IO27", T.BIDIR), (13, "IO14", T.BIDIR), (14, "IO12", T.BIDIR), (15, "GND2", T.PWRIN),
    (16, "IO13", T.BIDIR), (17, "IO9", T.NOCONNECT), (18, "IO10", T.NOCONNECT), (19, "IO11", T.NOCONNECT),
    (20, "IO6", T.NOCONNECT), (21, "IO7", T.NOCONNECT), (22, "IO8", T.NOCONNECT), (23, "IO15", T.BIDIR),
    (24, "IO2", T.BIDIR), (25, "IO0", T.BIDIR), (26, "IO4", T.BIDIR), (27, "IO16", T.BIDIR),
    (28, "IO17", T.BIDIR), (29, "IO5", T.BIDIR), (30, "IO18", T.BIDIR), (31, "IO19", T.BIDIR),
    (32, "NC", T.NOCONNECT), (33, "IO21", T.BIDIR), (34, "RXD0", T.INPUT), (35, "TXD0", T.OUTPUT),
    (36, "IO22", T.BIDIR), (37, "IO23", T.BIDIR), (38, "GND3", T.PWRIN), (39, "EPAD", T.PWRIN),
]
ESP32 = _template("ESP32-WROOM-32E", "U", _ESP32_PINS, "ESP32-WROOM-32E Wi-Fi/BT module, 4 MB flash")
# Module pin name of each GPIO number (GPIO1/3 are the UART0 programming pins).
ESP32_GPIO_PIN = {int(name[2:]): name for _, name, _ in _ESP32_PINS if name.startswith("IO")}
ESP32_GPIO_PIN[1] = "TXD0"
ESP32_GPIO_PIN[3] = "RXD0"

_MCP_PINS = [(1 + i, f"GPB{i}", T.BIDIR) for i in range(8)] + [
    (9, "VDD", T.PWRIN), (10, "VSS", T.PWRIN), (11, "NC1", T.NOCONNECT), (12, "SCL", T.INPUT),
    (13, "SDA", T.BIDIR), (14, "NC2", T.NOCONNECT), (15, "A0", T.INPUT), (16, "A1", T.INPUT),
    (17, "A2", T.INPUT), (18, "RESET", T.INPUT), (19, "INTB", T.OPENCOLL), (20, "INTA", T.OPENCOLL),
] + [(21 + i, f"GPA{i}", T.BIDIR) for i in range(8)]
MCP23017 = _template("MCP23017", "U", _MCP_PINS, "16-bit I2C I/O expander")

SP3485 = _template(
    "SP3485",
    "U",
    [(1, "RO", T.TRISTATE), (2, "~RE", T.INPUT), (3, "DE", T.INPUT), (4, "DI", T.INPUT),
     (5, "GND", T.PWRIN), (6, "A", T.BIDIR), (7, "B", T.BIDIR), (8, "VCC", T.PWRIN)],
    "3.3 V half-duplex RS-485 transceiver",
)

# Non-synchronous 60 V / 3 A buck regulator (SO-8 PowerPAD), adjustable output (FB = 0.75 V).
LMR16030 = _template(
    "LMR16030",
    "U",
    [(1, "BOOT", T.PASSIVE), (2, "VIN", T.PWRIN), (3, "EN", T.INPUT), (4, "RT", T.PASSIVE), (5, "FB", T.INPUT),
     (6, "SS", T.PASSIVE), (7, "GND", T.PWRIN), (8, "SW", T.PWROUT), (9, "PAD", T.PWRIN)],
    "4.3-60 V 3 A step-down converter",
)


def connector(pin_names, ref_prefix="J", description="Connector"):
    """A connector template whose pins are named by the signals they carry."""
    name = "CONN_1x%02d" % len(pin_names)
    return _template(name, ref_prefix, [(i + 1, n, T.PASSIVE) for i, n in enumerate(pin_names)], description)


# --- order data ------------------------------------------------------------------------------------------
def ohms(value: str) -> float:
    """Parse '4.7k', '100', '1M' into ohms."""
    mult = {"k": 1e3, "M": 1e6}.get(value[-1], 1.0)
    return float(value[:-1] if value[-1] in "kM" else value) * mult


def resistor(value: str) -> Order:
    """UNI-ROYAL 0603 1 % thick-film resistor; its part number carries the 4-digit value code."""
    r = ohms(value)
    if r < 100:
        code = f"{int(round(r))}0J" if r >= 10 else f"{r:g}".replace(".", "R") + "0J"
    else:
        exp = 0
        while r >= 1000:
            r /= 10
            exp += 1
        code = f"{int(round(r)):03d}{exp}"
    return Order("UNI-ROYAL", f"0603WAF{code}T5E", 0.01, "Resistor_SMD:R_0603_1608Metric")


def ceramic(mpn: str, cost: float = 0.02, size: str = "0603") -> Order:
    """Samsung MLCC; the part number encodes value, voltage and size."""
    fp = {"0603": "C_0603_1608Metric", "0805": "C_0805_2012Metric", "1206": "C_1206_3216Metric"}[size]
    return Order("Samsung", mpn, cost, f"Capacitor_SMD:{fp}")


C_100N = ceramic("CL10B104KB8NNNC")
C_1U = ceramic("CL10A105KB8NNNC")
C_10N = ceramic("CL10B103KB8NNNC")
C_10U_50V = ceramic("CL31A106KBHNNNE", 0.35, "1206")
C_22U = ceramic("CL21A226MAQNNNE", 0.08, "0805")
C_10U = ceramic("CL10A106KP8NNNC", 0.03)
C_BULK = Order("Rubycon", "50ZLH100MEFC8X11.5", 0.60, "Capacitor_THT:CP_Radial_D8.0mm_P3.50mm")
L_BUCK = Order("Sunlord", "SWPA6045S100MT", 0.55, "Inductor_SMD:L_6.3x6.3_H4.5")
F_PTC = Order("Bourns", "MF-SM250/33X-2", 1.20, "Fuse:Fuse_2920_7451Metric")
D_TVS_IN = Order("Littelfuse", "SMBJ33CA", 0.45, "Diode_SMD:D_SMB")
D_SCHOTTKY = Order("MDD", "SS34", 0.06, "Diode_SMD:D_SMA")
D_FLYBACK = Order("MDD", "SS110", 0.05, "Diode_SMD:D_SMA")
D_SIGNAL = Order("Nexperia", "1N4148W,115", 0.03, "Diode_SMD:D_SOD-123")
D_ZENER = Order("Nexperia", "BZT52H-C12,115", 0.05, "Diode_SMD:D_SOD-123F")
D_ESD = Order("Nexperia", "PESD3V3S1UL,315", 0.12, "Diode_SMD:D_SOD-882")
D_LED = Order("Everlight", "19-217/GHC-YR1S2/3T", 0.05, "LED_SMD:LED_0603_1608Metric")
D_SM712 = Order("Semtech", "SM712.TCT", 0.50, "Package_TO_SOT_SMD:SOT-23")
Q_PMOS = Order("Alpha & Omega", "AOD4185", 1.10, "Package_TO_SOT_SMD:TO-252-2")
Q_NMOS = Order("Vishay", "SI2318CDS-T1-GE3", 0.40, "Package_TO_SOT_SMD:SOT-23")
Q_NPN = Order("Nexperia", "MMBT3904,215", 0.04, "Package_TO_SOT_SMD:SOT-23")
U_ESP32 = Order("Espressif", "ESP32-WROOM-32E-N4", 18.50, "RF_Module:ESP32-WROOM-32E")
U_MCP23017 = Order("Microchip", "MCP23017-E/SO", 6.80, "Package_SO:SOIC-28W_7.5x17.9mm_P1.27mm")
U_SP3485 = Order("MaxLinear", "SP3485EN-L/TR", 1.30, "Package_SO:SOIC-8_3.9x4.9mm_P1.27mm")
U_BUCK = Order("Texas Instruments", "LMR16030SDDAR", 6.50, "Package_SO:TI_SO-PowerPAD-8")
BZ_MAGNETIC = Order("Jiangsu Huaneng", "MLT-8530", 0.60, "Buzzer_Beeper:Buzzer_Mallory_AST1109MLTRQ")
SW_TACT = Order("XKB Connectivity", "TS-1187A-B-A-B", 0.08, "Button_Switch_SMD:SW_SPST_TL3342")


def screw_terminal(n: int) -> Order:
    """5.08 mm pluggable terminal block (field wiring)."""
    return Order("DEGSON", f"15EDGRC-5.08-{n:02d}P", 0.35 * n, f"TerminalBlock:TerminalBlock_5.08mm_1x{n:02d}")


def pin_header(n: int) -> Order:
    """2.54 mm pin header (service and display headers)."""
    footprint = f"Connector_PinHeader_2.54mm:PinHeader_1x{n:02d}_P2.54mm_Vertical"
    return Order("XFCN", f"PZ254V-11-{n:02d}P", 0.03 * n, footprint)


def jst_xh(n: int) -> Order:
    """JST XH wire-to-board socket (compartment and keypad cables)."""
    footprint = f"Connector_JST:JST_XH_B{n}B-XH-A_1x{n:02d}_P2.50mm_Vertical"
    return Order("JST", f"B{n}B-XH-A(LF)(SN)", 0.25 + 0.05 * n, footprint)
