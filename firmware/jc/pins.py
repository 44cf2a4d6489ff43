"""ESP32 pin map of the locker controller board (hardware/schematics/board.py, docs/wiring.md section 8).

Locks, door switches and occupancy sensors hang on MCP23017 I/O expanders, so nothing that
energises a lock sits on an ESP32 pin that toggles during boot. Compartment n uses bit n-1
of its expander (GPA0..GPA7 = bits 0..7, GPB0..GPB3 = bits 8..11).
"""

from micropython import const

I2C_SDA = const(21)
I2C_SCL = const(22)
EXP_INT = const(32)  # open-drain interrupt of the door and sensor expanders

RS485_TX = const(17)
RS485_RX = const(16)
RS485_DE = const(4)  # driver enable, pulled down: receive at boot
RS485_UART_ID = const(1)  # UART1 on RS485_TX/RS485_RX for the lock boards

LED_STATUS = const(26)
BUZZER = const(25)  # PWM through an NPN
VSENSE = const(35)  # ADC1_CH7, supply voltage / 11

KEYPAD_ROWS = (13, 14, 27, 33)  # outputs, driven low one at a time
KEYPAD_COLS = (36, 39, 34)  # input-only pins with external pull-ups

# I2C bus and expander addresses (not GPIO numbers)
I2C_BUS_ID = const(0)
I2C_FREQ_HZ = const(400000)
EXP_LOCK_ADDR = const(0x20)  # outputs, high = lock energised
EXP_DOOR_ADDR = const(0x21)  # inputs, high = door open (switch closed while shut, 10k pull-up)
EXP_OCC_ADDR = const(0x22)  # inputs from the IR comparators
OCC_ACTIVE_LOW = const(1)  # the IR modules pull their output low when a parcel reflects
COMPARTMENTS_PER_BOARD = const(12)
VSENSE_DIVIDER_RATIO = const(11)
