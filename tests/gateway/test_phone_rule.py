"""One phone rule (jincun/phone.py): every tier that takes a phone number gives the same verdict, the
terminal page in a real browser included, and no copy of the pattern is left in the tree."""

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from cloud import constants as K
from cloud.errors import ItemRejected
from cloud.protocol import validate_gateway_record
from cloud.schemas import CodeResend
from gateway.config import TerminalConfig
from gateway.terminal import DepositIn, FaultIn, OutboundIn, TermDepositIn, terminal_page
from jincun.phone import PHONE_BODY, is_phone

REPO = Path(__file__).resolve().parents[2]
GOOD = ["13800138000", "+8613800138000", "01012345", "12345", "1" * 20]
BAD = ["", "1234", "1" * 21, "138 0013 8000", "138-0013-8000", "13800138000\n", "++8613800138000",
       "１３８００１３８０００", "phone", "+", "13800138000x"]


def gateway_takes(phone: str) -> bool:
    try:
        DepositIn(waybill="ZT1", phone=phone, carrier="中通", size="S")
    except ValidationError:
        return False
    return True


def test_the_rule_itself():
    assert [is_phone(p) for p in GOOD] == [True] * len(GOOD)
    assert [is_phone(p) for p in BAD] == [False] * len(BAD)
    assert not is_phone(13800138000), "a number is not a phone string"


@pytest.mark.parametrize("phone", GOOD + BAD)
def test_gateway_and_cloud_models_agree_with_the_rule(phone):
    want = is_phone(phone)
    assert gateway_takes(phone) is want
    for model, kw in ((TermDepositIn, {"waybill": "ZT123456", "size": "S"}),
                      (OutboundIn, {"carrier": "顺丰", "sender_name": "张", "dest": "县城", "weight_g": 1})):
        field = "phone" if model is TermDepositIn else "sender_phone"
        try:
            model(**kw, **{field: phone})
            took = True
        except ValidationError:
            took = False
        assert took is want, model.__name__
    try:
        TerminalConfig(assist_phones=[phone])
        took = True
    except ValidationError:
        took = False
    assert took is want
    try:
        CodeResend(station="lz-1", phone=phone, reason="leak")
        took = True
    except ValidationError:
        took = False
    assert took is want
    assert (K.PHONE_RE.fullmatch(phone) is not None) is want
    # an optional phone (fault report) is empty or a phone
    try:
        FaultIn(locker="l1", text="门打不开", phone=phone)
        took = True
    except ValidationError:
        took = False
    assert took is (want or phone == "")


def test_cloud_protocol_applies_the_rule_to_a_code_item():
    body = {"ref": "p-1", "locker": "l1", "phone": "13800138000", "code": "123456", "exp_ts": 1764355000}
    assert validate_gateway_record("code", body)["phone"] == "13800138000"
    with pytest.raises(ItemRejected):
        validate_gateway_record("code", {**body, "phone": "138 0013 8000"})


def test_no_copy_of_the_pattern_is_left_in_the_tree():
    body = re.escape("[0-9]{5,20}")
    found = []
    for path in REPO.glob("**/*"):
        if path.suffix not in (".py", ".js", ".html", ".j2") or ".venv" in path.parts or "tests" in path.parts:
            continue
        if re.search(body, path.read_text(encoding="utf-8", errors="replace")) and path.name != "phone.py":
            found.append(str(path.relative_to(REPO)))
    assert found == []


def test_terminal_page_phone_inputs_follow_the_rule_in_chromium():
    page_html = terminal_page()
    assert "{{" not in page_html
    assert page_html.count('inputmode="tel"') == page_html.count(f'pattern="{PHONE_BODY}"') == 5
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium is not installed")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.set_content(page_html.replace('src="', 'data-src="'))  # the markup alone, no script
            for sel in ("#phone", "#ob-phone", "#ft-phone", "#ch-phone"):
                assert page.get_attribute(sel, "pattern") == PHONE_BODY
                for phone in GOOD + BAD:
                    if "\n" in phone or phone == "":
                        continue  # an input drops newlines; an empty required input is a different error
                    page.fill(sel, phone)
                    valid = page.eval_on_selector(sel, "e => !e.validity.patternMismatch")
                    assert valid is is_phone(phone), (sel, phone)
        finally:
            browser.close()
