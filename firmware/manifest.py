# Frozen build of the locker controller for a custom ESP32 image (MicroPython manifest, see docs/firmware.md):
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/jincun/firmware/manifest.py
# The port's own frozen modules come first; then the micropython-lib packages the firmware imports, from the
# copy vendored beside this file (pinned commit in lib/micropython-lib/UPSTREAM.md); then the application.
# boot.py and main.py stay files on the board's flash (MicroPython runs them by name), as does config.json.

include("$(PORT_DIR)/boards/manifest.py")

add_library("micropython-lib", "lib/micropython-lib")
require("hmac", library="micropython-lib")
require("logging", library="micropython-lib")
require("ssd1306", library="micropython-lib")
require("aiorepl", library="micropython-lib")

package("jc")
