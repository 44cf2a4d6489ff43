"""Maintenance console: micropython-lib's `aiorepl` on the serial console, beside the controller's loops.

Off unless config.json says `"console": true`. A technician with a USB cable (`mpremote connect PORT`)
then gets a `jincun> ` prompt while the keypad, doors and network keep running, with `app` (the running
controller: `app.n`, `app.comps`, `app.outbox.count()`, `app.vault`, ...) in scope; `await` works. The
console can read and change everything on the board, so it stays off in the field and is switched on for
a maintenance visit by editing config.json (the same cable).
"""

PROMPT = "jincun> "


async def run(app, log):
    import aiorepl

    log("console", "maintenance console on the serial port")
    try:
        await aiorepl.task({"app": app}, prompt=PROMPT)
    except Exception as e:  # the console is a tool: its failure never stops the controller
        log("console", "stopped:", repr(e))
