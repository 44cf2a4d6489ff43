"""The phone-number rule: one pattern for every tier that takes a recipient's or sender's number.

The gateway's API, terminal, settings and downlink, and the cloud's protocol, forms and routes import it;
the terminal page gets the same pattern written into its inputs when it is served (docs/protocol.md §5.1).
"""

from __future__ import annotations

import re

# an optional "+" then 5 to 20 digits: mainland mobiles (11 digits), landlines with area code, and
# international numbers, with no spaces or dashes (the terminal strips nothing, the cloud sends SMS to it)
PHONE_BODY = r"\+?[0-9]{5,20}"
# anchored, for pydantic Field(pattern=...) and FastAPI Path(pattern=...)
PHONE_PATTERN = f"^{PHONE_BODY}$"
# an optional phone field: empty, or a phone number
PHONE_OR_EMPTY_PATTERN = f"^({PHONE_BODY})?$"
PHONE_RE = re.compile(PHONE_PATTERN)
_FULL = re.compile(PHONE_BODY)


def is_phone(value: object) -> bool:
    """True for a string that is a whole phone number (no trailing newline slips through, unlike `$`)."""
    return isinstance(value, str) and _FULL.fullmatch(value) is not None


# a mainland China mobile number, the only kind an SMS code can reach: 11 digits, 1 then 3-9
MOBILE_BODY = r"1[3-9][0-9]{9}"
_MOBILE = re.compile(MOBILE_BODY)


def is_mobile(value: object) -> bool:
    """True for a mainland mobile number (13800138000), with no spaces, dashes or +86."""
    return isinstance(value, str) and is_phone(value) and _MOBILE.fullmatch(value) is not None


def mask_phone(phone: str) -> str:
    """The number as a log line, a terminal list or a receipt may show it: the first 3 and last 4 digits
    (139****1234); a number too short to cut so shows as ****."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"
