"""Reference pickup-code hash for tests, from the CPython standard library (protocol section 4)."""

import hashlib
import hmac


def code_h(secret_hex: str, code: str) -> str:
    return hmac.new(bytes.fromhex(secret_hex), b"pickup:" + code.encode(), hashlib.sha256).hexdigest()
