"""Page strings, Chinese first with English."""

from __future__ import annotations

LANGS = ("zh", "en")

STRINGS: dict[str, tuple[str, str]] = {
    "app": ("进村 · 乡村快递柜", "Jincun · Village parcel lockers"),
    "overview": ("站点总览", "Stations overview"),
    "sms": ("短信", "SMS outbox"),
    "parcel": ("包裹", "Parcel"),
    "timeline": ("包裹轨迹", "Parcel timeline"),
    "station": ("站点", "Station"),
    "locker": ("快递柜", "Locker"),
    "compartment": ("格口", "Compartment"),
    "last_seen": ("最后在线", "Last seen"),
    "recent_parcels": ("最近包裹", "Recent parcels"),
    "waybill": ("运单号", "Waybill"),
    "carrier": ("快递公司", "Carrier"),
    "phone": ("手机号", "Phone"),
    "status": ("状态", "Status"),
    "time": ("时间", "Time"),
    "text": ("内容", "Text"),
    "source": ("来源", "Source"),
    "no_stations": ("还没有站点。", "No stations yet."),
    "no_parcels": ("还没有包裹。", "No parcels yet."),
    "no_sms": ("还没有短信。", "No messages yet."),
    "not_found": ("找不到这个包裹。", "No such parcel."),
    "never": ("从未", "never"),
    "online": ("在线", "online"),
    "lost": ("离线", "lost"),
    "unknown": ("未知", "unknown"),
    "empty": ("空闲", "empty"),
    "deposit": ("投递中", "depositing"),
    "occupied": ("有件", "occupied"),
    "pickup": ("取件中", "picking up"),
    "disabled": ("停用", "disabled"),
    "fault": ("故障", "fault"),
    "door_open": ("门开", "door open"),
    "preadvised": ("已预报", "pre-advised"),
    "deposited": ("已入柜", "deposited"),
    "notified": ("已通知", "notified"),
    "picked_up": ("已取件", "picked up"),
    "overdue": ("滞留", "overdue"),
    "returned": ("已退回", "returned"),
    "delivered_door": ("已送货上门", "delivered to door"),
    "queued": ("待发送", "queued"),
    "sent": ("已发送", "sent"),
    "failed": ("发送失败", "failed"),
    "village_shop": ("村级便民店", "village shop"),
    "party_service_centre": ("党群服务中心", "party service centre"),
    "postal_point": ("邮政网点", "postal point"),
    "town_station": ("乡镇站", "town station"),
    "district_hub": ("县级中心", "district hub"),
    "switch_lang": ("English", "中文"),
    "location": ("位置", "Location"),
}


def pick_lang(value: str | None) -> str:
    """The page language: `en` when asked for, Chinese otherwise."""
    return "en" if value == "en" else "zh"


def translator(lang: str):
    """A function mapping a string key (or a state value) to text in `lang`."""
    idx = LANGS.index(lang)

    def t(key: str | None) -> str:
        if key is None:
            return ""
        pair = STRINGS.get(key)
        return pair[idx] if pair else key

    return t
