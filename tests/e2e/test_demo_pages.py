"""Every page of the demo on a 390 px phone, in Chinese and in English, opened by the demo's own accounts:
nothing wider than the screen. A screenshot of each page at 390 and 1280 px goes to var/screenshots/."""

from __future__ import annotations

import re
import shutil

import httpx
import pytest
from screens import DESKTOP, FITS, PHONE, screenshot_path

from simulator.demo import create_accounts, demo_people, terminal_section
from simulator.stack import Stack

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
VILLAGER = "13800000001"

pytestmark = pytest.mark.micropython  # the demo's lockers run the firmware in the MicroPython unix port


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's station with its accounts, a villager's parcels (one picked up), and a county of 300
    stations for the statistics and the long lists."""
    folder = tmp_path_factory.mktemp("demo")
    people = demo_people(folder)
    with Stack(folder, terminal=terminal_section(people)) as stack:
        create_accounts(stack, people)
        stack.deposit(waybill="EM100000000", phone=VILLAGER, carrier="EMS", size="S")
        stack.pickup(stack.sms_code(phone=VILLAGER, waybill="EM100000000"))
        for i in (1, 2):
            stack.deposit(waybill=f"EM10000000{i}", phone=VILLAGER, carrier="EMS", size="S")
        stack.wait_drained()
        from cloud.seed import seed_county
        from cloud.storage import make_engine, make_sessionmaker
        engine = make_engine(f"sqlite:///{folder / 'cloud.db'}")
        with make_sessionmaker(engine)() as session:
            seed_county(session, towns=12, villages=400, parcels_per_station_day=0.3, days=30)
        engine.dispose()
        yield stack, {p.username: p for p in people}


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Looker:
    """Opens pages as one person, checks each fits the phone, and keeps a picture at both widths."""

    def __init__(self, browser, who: str) -> None:
        self.context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.who = who
        self.seen: list[str] = []

    def look(self, name: str, url: str | None = None) -> None:
        page = self.page
        page.set_viewport_size(PHONE)
        if url is not None:
            page.goto(url)
        page.wait_for_load_state("networkidle")
        scroll, inner = page.evaluate(FITS)
        # a phone browser widens its layout to a page too wide (and zooms out): the width must stay the phone's
        assert scroll <= inner == PHONE["width"], f"{name} as {self.who}: {scroll} px wide, {inner} px window"
        page.screenshot(path=str(screenshot_path(f"{name}-390")), full_page=True)
        page.set_viewport_size(DESKTOP)
        page.wait_for_timeout(150)  # the charts redraw for the new width
        page.screenshot(path=str(screenshot_path(f"{name}-1280")), full_page=True)
        page.set_viewport_size(PHONE)
        self.seen.append(name)

    def close(self) -> None:
        assert self.errors == [], self.errors
        self.context.close()


def staff(browser, base: str, person, lang: str, path: str) -> Looker:
    """A person logged in: the page they open sends them to the login page (in its language) and back."""
    looker = Looker(browser, person.username)
    looker.page.goto(f"{base}{path}{'?lang=en' if lang == 'en' else ''}")
    assert "/login" in looker.page.url
    assert ("lang=en" in looker.page.url) == (lang == "en"), "the login page speaks the page's language"
    looker.page.fill("#username", person.username)
    looker.page.fill("#password", person.password)
    looker.page.click("#login-submit")
    looker.page.wait_for_load_state()
    assert "/login" not in looker.page.url, f"{person.username} could not log in"
    assert looker.page.url.endswith(path + ("?lang=en" if lang == "en" else "")), looker.page.url
    return looker


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_cloud_page_fits_a_phone(demo, browser, lang):
    stack, people = demo
    base, q = stack.cloud_url, ("?lang=en" if lang == "en" else "")
    amp = "&lang=en" if lang == "en" else ""
    ref = stack.parcels(waybill="EM100000001")[0]["ref"]

    anon = Looker(browser, "anyone")
    anon.look(f"login-{lang}", f"{base}/login{q}")
    assert anon.page.locator("#page-title").inner_text() == ("Log in" if lang == "en" else "登录")
    anon.look(f"parcel-{lang}", f"{base}/parcels/{ref}{q}")
    anon.close()

    county = staff(browser, base, people["county"], lang, "/stats")
    county.look(f"overview-{lang}", f"{base}/{q}")
    assert county.page.locator("#pager").count() == 1, "300 stations come 20 a page"
    county.look(f"overview-search-{lang}", f"{base}/?q=示例村{amp}")
    county.look(f"stats-{lang}", f"{base}/stats{q}")
    county.look(f"stats-by-carrier-{lang}", f"{base}/stats?by=carrier&period=90{amp}")
    county.look(f"sms-{lang}", f"{base}/sms{q}")
    county.close()

    maint = staff(browser, base, people["maint"], lang, "/ops")
    maint.look(f"ops-{lang}", f"{base}/ops{q}")
    maint.look(f"ops-page2-{lang}", f"{base}/ops?page=2{amp}")
    maint.look(f"ops-locker-{lang}", f"{base}/ops/{stack.station}/l1{q}")
    # a refused command: in the page's language, the form as it was sent, and still no sideways scrolling
    maint.page.select_option("#op", "open")
    maint.page.select_option("#c", "3")
    maint.page.click("#action-send")
    maint.page.wait_for_load_state()
    assert maint.page.locator(".error").inner_text() == (
        "Remote open needs a reason." if lang == "en" else "远程开门需要填写原因。")
    assert maint.page.locator("#c").input_value() == "3"
    maint.look(f"ops-locker-refused-{lang}")
    maint.close()

    agent = staff(browser, base, people["agent"], lang, "/ops")
    agent.look(f"ops-agent-{lang}", f"{base}/ops{q}")
    assert agent.page.locator("tr.gateway-row").count() == 1, "a station agent sees their own station"
    agent.close()

    villager = Looker(browser, "villager")
    villager.look(f"m-login-{lang}", f"{base}/m{q}")
    villager.page.fill("#phone", VILLAGER)
    villager.page.click("#otp-send")
    villager.page.wait_for_load_state()
    villager.look(f"m-code-{lang}")
    sms = httpx.get(f"{base}/api/v1/notifications", params={"phone": VILLAGER},
                    headers={"Authorization": f"Bearer {stack.admin_token}"}).json()
    code = next(m.group(1) for n in sms if (m := re.search(r"验证码 (\d{6})", n["text"])))
    villager.page.fill("#code", code)
    villager.page.click("#code-submit")
    villager.page.wait_for_load_state()
    villager.look(f"m-{lang}")
    card = villager.page.locator(".parcel-card", has_text="EM100000001")
    assert card.locator(".parcel-status").inner_text() == ("waiting for pickup" if lang == "en" else "待取件")
    assert card.locator(".station-address").inner_text() == "示例镇示例村村委会东侧"
    assert card.locator(".station-hours").inner_text() == "08:00–20:00"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", card.locator(".pickup-by").inner_text())
    villager.page.locator(".parcel-card", has_text="EM100000000").locator("summary.not-received").click()
    villager.look(f"m-not-received-ask-{lang}")
    villager.close()


def test_the_station_terminal_fits_a_phone(demo, browser):
    stack, people = demo
    url = f"{stack.gateway_url}/terminal"
    for lang in ("zh", "en"):
        for person, views in ((people["courier-ems"], ("deposit", "returns")),
                              (people["agent"], ("waiting", "d2d", "outbound", "fault", "found"))):
            looker = Looker(browser, person.username)
            page = looker.page
            page.goto(url)
            page.wait_for_selector("#user option", state="attached")
            if lang == "en":
                page.click("#lang")
            looker.look(f"terminal-login-{lang}")
            page.select_option("#user", person.username)
            page.fill("#pin", person.pin)
            page.click("#f-login button")
            page.wait_for_selector("#v-courier:not(.hidden), #v-agent:not(.hidden)")
            for view in views:
                if view != "deposit":
                    page.click(f"button[data-tab={view}]")
                looker.look(f"terminal-{person.terminal_role}-{view}-{lang}")
            assert page.locator("h1:visible, nav.tabs").first.inner_text()
            looker.close()
