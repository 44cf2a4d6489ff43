"""Station gateway: locker link over MQTT, durable outbox, uplink to the county cloud.

The firmware's own modules (package `jc`: the wire core, the RS-485 framing codec, the compartment state
machine and the code vault) drive the RS-485 lock boards wired to the station, so each rule runs once. In a
source checkout `jc` is the link at the repository's root to firmware/jc; an installed gateway has `jc`
installed beside it.
"""
