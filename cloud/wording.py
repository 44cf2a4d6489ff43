"""Saying things as people do: local times, durations in days and hours, places as 1号柜 4号格口, who moved a
parcel on, a refused action in the page's language. The words themselves are in the one table (i18n.py)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from jincun.i18n import STRINGS, translator

# station staff and villagers live on China Standard Time (Asia/Shanghai); no DST there
CST = timezone(timedelta(hours=8))


def fmt_time(ts: float | None) -> str:
    """A moment as a local date and time, to the minute: 2026-12-05 17:03."""
    if not ts:
        return "—"
    return datetime.fromtimestamp(ts, CST).strftime("%Y-%m-%d %H:%M")


def fmt_date(ts: float | None) -> str:
    """A moment as a local date: 2026-12-05."""
    if not ts:
        return "—"
    return datetime.fromtimestamp(ts, CST).strftime("%Y-%m-%d")


def duration(seconds: float | None, lang: str) -> str:
    """A span in the largest two units people say: 28 天 8 小时, 3 小时 20 分钟, 5 分钟 (never 680.8 hours)."""
    if seconds is None:
        return "—"
    t = translator(lang)
    minutes = max(1 if seconds > 0 else 0, int(round(seconds / 60)))  # a few seconds count as a minute
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} {t('unit_d')}")
        if hours:
            parts.append(f"{hours} {t('unit_h')}")
    elif hours:
        parts.append(f"{hours} {t('unit_h')}")
        if mins:
            parts.append(f"{mins} {t('unit_min')}")
    else:
        parts.append(f"{mins} {t('unit_min')}")
    return " ".join(parts)


def locker_label(locker_id: str | None, lang: str) -> str:
    """A locker as people say it: `l1` is 1号柜 (locker 1); an id without a number stays as it is."""
    if not locker_id:
        return "—"
    digits = re.search(r"(\d+)$", locker_id)
    return translator(lang)("locker_n").format(n=digits.group(1)) if digits else locker_id


def place(locker_id: str | None, c: int | None, lang: str) -> str:
    """A locker and compartment as people say it: 1号柜 4号格口 (locker 1, compartment 4)."""
    if not locker_id:
        return "—"
    where = locker_label(locker_id, lang)
    if c is None:
        return where
    comp = translator(lang)("comp_n").format(n=c)
    return f"{where} {comp}" if lang == "zh" else f"{where}, {comp}"


def refusal(exc: Exception, lang: str) -> str:
    """The words for a refused action: its `key` and `args` from the table, else its own text."""
    key = getattr(exc, "key", None)
    if not key or f"err.{key}" not in STRINGS:
        return str(exc)
    t = translator(lang)
    args = dict(getattr(exc, "args_", {}))
    if "op" in args:
        args["op"] = t(OP_LABELS.get(args["op"], args["op"]))
    if "locker" in args:
        args["locker"] = locker_label(args["locker"], lang)
    if "comp" in args:
        args["comp"] = t("comp_n").format(n=args["comp"])
    if "wait" in args:
        args["wait"] = duration(float(args["wait"]), lang)
    return t(f"err.{key}").format(**args)


def _hours(h: int, lang: str) -> str:
    t = translator(lang)
    return f"{h // 24} {t('unit_d')}" if h and h % 24 == 0 else f"{h} {t('unit_h')}"


def wait_range(lo: int, hi: int | None, lang: str) -> str:
    """A bucket of waiting time in words: 2 小时以内, 2–6 小时, 1–2 天, 3 天以上."""
    t = translator(lang)
    if hi is None:
        return t("wait_over").format(x=_hours(lo, lang))
    if lo == 0:
        return t("wait_under").format(x=_hours(hi, lang))
    a, b = _hours(lo, lang), _hours(hi, lang)
    if a.split(" ")[1] == b.split(" ")[1]:
        a = a.split(" ")[0]
    return f"{a}–{b}"


def step_label(status: str, lang: str) -> str:
    """A step of a parcel's timeline in words (已放入快递柜, 已发取件短信), else its status."""
    t = translator(lang)
    return t(f"step.{status}") if f"step.{status}" in STRINGS else t(status)


# a staff command's name in the table
OP_LABELS = {"open": "remote_open", "disable": "disable_comp", "enable": "enable_comp", "rebirth": "rebirth",
             "code_sync": "op.code_sync", "fw_rollout": "op.fw_rollout", "config": "op.config"}


def op_label(op: str, lang: str) -> str:
    """A command as people say it (远程开门, 下发新取件码), never its wire name."""
    return translator(lang)(OP_LABELS.get(op, op))


def source_label(source: str | None, lang: str) -> str:
    """Who moved a parcel on, in words: 1号柜, 驿站终端, 工作人员 li, 系统自动; never `l1/88edeb77/4`."""
    t = translator(lang)
    if not source:
        return ""
    if source == "sweep":
        return t("src.sweep")
    if source.startswith("staff:"):
        return t("src.staff").format(who=source.split(":", 1)[1])
    if source.startswith("carrier:"):
        return t("src.carrier")
    if source.startswith("gw/"):
        return t("src.terminal")
    if " by " in source:
        return t("src.handover")
    if "/" in source:
        return locker_label(source.split("/", 1)[0], lang)
    return source

