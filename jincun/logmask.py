"""Pickup codes never reach a log: every log record's text has its codes replaced by ``******``.

Installed once per process (the cloud and the gateway outside demo mode) as a log record factory, so it
covers every logger and handler, uvicorn's access log too, whoever configures them later.
"""

from __future__ import annotations

import logging
import re

MASK = "******"
# a 6-digit code after 取件码 (pickup), 验证码 (the login code of the phone page) or "code" (plain, key=value,
# JSON key), as SMS texts, URLs and bodies carry it
CODE_IN_TEXT = re.compile(r"(取件码|验证码|\bcode)([\"']?\s*[:=：]?\s*[\"']?)\d{6}(?!\d)", re.IGNORECASE)
_installed = False


def mask_codes(text: str) -> str:
    """The text with every pickup code in it replaced by ******."""
    return CODE_IN_TEXT.sub(lambda m: m.group(1) + m.group(2) + MASK, text)


def install() -> None:
    """Mask codes in every log record made from now on in this process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    make = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            return record  # a malformed call: logging reports it itself
        masked = mask_codes(text)
        if masked != text:
            record.msg, record.args = masked, None
        return record
    logging.setLogRecordFactory(factory)
