"""Station gateway: locker link over MQTT, durable outbox, uplink to the county cloud."""
