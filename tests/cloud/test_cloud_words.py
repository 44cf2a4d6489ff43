"""The one table of words: every message in both languages, the terminal's and the servers' errors in it, and
times, durations and places said as people say them."""

from __future__ import annotations

import re
from pathlib import Path

from cloud.errors import CommandRefused
from jincun.i18n import STRINGS, translator
from cloud.wording import duration, fmt_time, place, refusal, source_label, wait_range

REPO = Path(__file__).resolve().parents[2]
FIELDS = re.compile(r"\{(\w*)\}")


def test_every_entry_has_both_languages_with_the_same_blanks():
    for key, (zh, en) in STRINGS.items():
        assert zh.strip() and en.strip(), key
        assert sorted(FIELDS.findall(zh)) == sorted(FIELDS.findall(en)), key


def test_the_terminal_takes_every_word_and_error_from_the_table():
    page = (REPO / "gateway/terminal_static/index.html").read_text(encoding="utf-8")
    script = (REPO / "gateway/terminal_static/app.js").read_text(encoding="utf-8")
    used = set(re.findall(r'data-t="(\w+)"', page)) | set(re.findall(r'\bt\("(\w+)"\)', script))
    used |= {f"size_{s}" for s in "SML"} | {"up", "down"}
    missing = sorted(k for k in used if f"term.{k}" not in STRINGS)
    assert missing == []
    # no second table hides in the script
    assert "const T = {" not in script and "PIN 码错误" not in script
    codes: set[str] = set()
    for path in (REPO / "gateway").glob("*.py"):
        codes |= set(re.findall(r'"error": "(\w+)"', path.read_text(encoding="utf-8")))
    assert codes and sorted(c for c in codes if f"err.{c}" not in STRINGS) == []


def test_the_terminal_page_carries_the_words(tmp_path):
    from gateway.terminal import terminal_page, terminal_words

    words = terminal_words()
    assert words["zh"]["bad_pin"] == "PIN 码错误" and words["en"]["bad_pin"] == "Wrong PIN"
    assert words["zh"]["login_title"] == "驿站终端登录"
    assert '"login_title": "驿站终端登录"' in terminal_page() and "{{words}}" not in terminal_page()


def test_a_refused_command_in_the_pages_language():
    exc = CommandRefused(422, "open needs a reason", key="needs_reason", op="open")
    assert refusal(exc, "zh") == "远程开门需要填写原因。"
    assert refusal(exc, "en") == "Remote open needs a reason."
    far = CommandRefused(422, "locker l3 has no compartment 9", key="no_compartment_n", locker="l3", comp=9)
    assert refusal(far, "zh") == "3号柜没有9号格口。"
    # a refusal without words keeps its own text
    assert refusal(CommandRefused(409, "something else"), "zh") == "something else"


def test_durations_times_and_places_in_words():
    assert duration(680.8 * 3600, "zh") == "28 天 8 小时"
    assert duration(680.8 * 3600, "en") == "28 d 8 h"
    assert duration(200 * 60, "zh") == "3 小时 20 分钟" and duration(30, "en") == "1 min"
    # local time in Asia/Shanghai: 16:00 UTC is midnight there, the next day
    assert fmt_time(1_764_950_400) == "2025-12-06 00:00"
    assert place("l1", 4, "zh") == "1号柜 4号格口" and place("l1", 4, "en") == "locker 1, compartment 4"
    assert source_label("l1/88edeb77/4", "zh") == "1号柜" and source_label("staff:li", "en") == "staff member li"
    assert source_label("gw/5f0c3a9e/12", "zh") == "驿站终端"
    assert wait_range(72, None, "zh") == "3 天以上" and wait_range(24, 48, "en") == "1–2 d"


def test_statuses_in_villagers_words():
    t = translator("zh")
    assert [t(s) for s in ("notified", "picked_up", "delivered_door", "returned", "cancelled")] == [
        "待取件", "已取件", "已送货上门", "已退回", "已取消"]
