"""The one table of words: the cloud's pages, the station terminal (served to it as JSON), and the errors
both sides show a person. Chinese first with English; statuses in the words villagers use.

Keys: plain for the cloud's pages, `term.` for the station terminal's, `err.` for an error code a server
answers with (the terminal shows `err.<code>`; the cloud's pages show the error of a refused action)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

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
    "preadvised": ("待投递", "on its way"),
    "deposited": ("待取件", "waiting for pickup"),
    "notified": ("待取件", "waiting for pickup"),
    "picked_up": ("已取件", "picked up"),
    "overdue": ("超期未取", "overdue"),
    "returned": ("已退回", "returned"),
    "delivered_door": ("已送货上门", "delivered to door"),
    "taken_in": ("已收寄", "taken in"),
    "fault_report": ("村民报修", "villager's fault report"),
    "door_ajar": ("柜门未关", "door left open"),
    "forced_open": ("柜门被撬", "door forced open"),
    "lock_jam": ("锁卡住", "lock jammed"),
    "occupancy_mismatch": ("占用不符", "occupancy mismatch"),
    "sensor_fault": ("传感器故障", "sensor fault"),
    "lockout": ("键盘锁定", "keypad locked out"),
    "gateways": ("站点网关", "Station gateways"),
    "gateway_link": ("网关上行", "Gateway link"),
    "uplink_up": ("已连接", "connected"),
    "uplink_down": ("已断开", "disconnected"),
    "outbox_depth": ("待上传", "Outbox depth"),
    "oldest_unsent": ("最早未发已等", "Oldest unsent for"),
    "lockers_online": ("在线柜数", "Lockers online"),
    "cpu_temp": ("CPU温度", "CPU temp"),
    "no_gateway_report": ("网关尚未上报", "no report yet"),
    "report": ("报修内容", "Report"),
    "weight_kg": ("重量(公斤)", "Weight (kg)"),
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
    "ops": ("运维看板", "Maintenance"),
    "stats": ("县级统计", "County statistics"),
    "phone_page": ("查件", "My parcels"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "login_failed": ("用户名或密码错误。", "Wrong user name or password."),
    "stale": ("很久没有消息", "silent"),
    "offline": ("离线", "offline"),
    "rssi": ("信号", "RSSI"),
    "voltage": ("电压", "Voltage"),
    "temperature": ("温度", "Temperature"),
    "outbox": ("待发", "Outbox"),
    "firmware": ("固件", "Firmware"),
    "alarms": ("告警", "Alarms"),
    "no_alarms": ("没有未处理的告警。", "No open alarms."),
    "all": ("全部", "all"),
    "none_in_state": ("没有这个状态的项。", "None in this state."),
    "ack": ("确认", "Acknowledge"),
    "kind": ("类型", "Kind"),
    "actions": ("操作", "Actions"),
    "remote_open": ("远程开门", "Remote open"),
    "command_queued": ("命令已排队，等网关取走：", "Command queued for the gateway:"),
    "command_log": ("命令记录", "Command log"),
    "command": ("命令", "Command"),
    "disable_comp": ("停用格口", "Disable compartment"),
    "enable_comp": ("启用格口", "Enable compartment"),
    "rebirth": ("重新上报状态", "Rebirth"),
    "reason": ("原因", "Reason"),
    "send": ("提交", "Send"),
    "health_24h": ("近24小时", "Last 24 h"),
    "health_7d": ("近7天", "Last 7 days"),
    "not_enough_data": ("数据不足", "not enough data"),
    "summary": ("全县概况", "County at a glance"),
    "villages_covered": ("{c}/{n} 个村", "{c} of {n} villages"),
    "parcels_today": ("今日包裹", "Parcels today"),
    "parcels_week": ("本周包裹", "Parcels this week"),
    "parcels_unit": ("件", "parcels"),
    "overdue_now": ("超期未取", "Overdue now"),
    "door_backlog": ("送货上门待办", "Door-to-door backlog"),
    "oldest_days": ("件，最久已等 {d}", "parcels, oldest waiting {d}"),
    "extra_charges": ("额外收费", "Extra charges"),
    "extra_parcels": ("{n} 件入站包裹", "on {n} inbound parcels"),
    "unit_dbm": ("dBm", "dBm"),
    "unit_volt": ("V", "V"),
    "unit_celsius": ("°C", "°C"),
    "unit_events": ("条", "events"),
    "fw_rollouts": ("固件升级", "Firmware roll-outs"),
    "no_rollouts": ("没有固件升级。", "No roll-outs."),
    "details": ("详情", "Details"),
    "coverage": ("村级覆盖率", "Village coverage"),
    "town": ("乡镇", "Town"),
    "village": ("村", "Village"),
    "villages": ("行政村数", "Villages"),
    "covered": ("已覆盖", "Covered"),
    "uncovered": ("未覆盖", "Uncovered"),
    "rate": ("比例", "Rate"),
    "volumes": ("每日收寄量", "Daily volumes"),
    "day": ("日期", "Day"),
    "inbound": ("收件", "Inbound"),
    "outbound": ("寄件", "Outbound"),
    "pickup_times": ("取件时长分布", "Pickup time distribution"),
    "hours": ("等待时长", "Wait"),
    "parcels_n": ("包裹数", "Parcels"),
    "share": ("占比", "Share"),
    "overdue_rate": ("滞留率", "Overdue rate"),
    "deposited_n": ("入柜数", "Deposited"),
    "overdue_n": ("滞留数", "Overdue"),
    "flags": ("虚假签收疑点", "Fake sign-off flags"),
    "no_flags": ("没有疑点。", "No flags."),
    "flag_open": ("待核查", "to check"),
    "flag_resolved": ("已处理", "resolved"),
    "missing": ("缺少证据", "Missing evidence"),
    "carrier_signed": ("快递员报签收", "carrier reported signed"),
    "not_received": ("收件人报未收到", "recipient reports not received"),
    "subsidy": ("补贴优先村（偏远、人多、件量少）", "Subsidy ranking (remote, populous, low volume)"),
    "population": ("人口", "Population"),
    "dispatch": ("镇级共配站派送", "Dispatch from the town stations"),
    "dispatch_note": ("各乡镇的共配站、有网点的村、到村网点的日均件量、网点离共配站的最远和平均距离。",
                      "Each town's co-delivery station, villages with a point, parcels a day to those points, and "
                      "the farthest and mean distance of the points from the town station."),
    "served_villages": ("有网点村", "Villages served"),
    "farthest_km": ("最远(公里)", "Farthest (km)"),
    "mean_km": ("平均(公里)", "Mean (km)"),
    "distance_km": ("距乡镇(公里)", "Distance (km)"),
    "per_day": ("日均件量", "Parcels a day"),
    "score": ("得分", "Score"),
    "produce": ("农产品寄出量", "Farm-produce outbound"),
    "fees": ("收费记录（二次收费核查）", "Fees charged (extra-charge audit)"),
    "last_n_days": ("近{n}天", "Last {n} days"),
    "door_help_stats": ("送货上门（老年人、残疾人）", "Door-to-door help (elderly and disabled villagers)"),
    "door_help_note": ("需要送货上门的收件人现有的待送包裹，等待最久的排在前面；送达数为统计期内。",
                       "Parcels now waiting for recipients who asked for door-to-door help, longest waits first; "
                       "deliveries are in the period."),
    "no_door_help": ("没有需要送货上门的包裹。", "No parcels for door-to-door help."),
    "waiting_n": ("待送包裹", "Waiting"),
    "oldest_wait_h": ("最久等待", "Longest wait"),
    "delivered_door_n": ("已送货上门", "Delivered to door"),
    "period_note": ("统计期用于取件时长、滞留率、补贴排名、农产品、送货上门和收费；覆盖率为当前，疑点为最新50条。",
                    "The period covers pickup times, overdue rate, subsidy ranking, farm produce, door-to-door "
                    "deliveries and fees; coverage is as of now, flags are the newest 50."),
    "fees_note": ("收件的收费是向收件人加收的派送费，排在前面，请逐条核查；寄件的收费是运费。",
                  "A fee on an inbound parcel is an extra charge to the recipient for delivery: those come first, "
                  "to be looked into; fees on outbound parcels are postage."),
    "no_fees": ("没有收费记录。", "No fees recorded."),
    "direction": ("方向", "Direction"),
    "fee_reason": ("收费原因", "Reason"),
    "total_yuan": ("金额(元)", "Total (yuan)"),
    "export": ("导出", "Export"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "by_town": ("按乡镇", "by town"),
    "by_village": ("按村", "by village"),
    "by_carrier": ("按快递公司", "by carrier"),
    "phone_login": ("手机号登录查件", "Log in with your phone"),
    "get_code": ("获取验证码", "Send me a code"),
    "sms_code": ("短信验证码", "SMS code"),
    "code_sent": ("验证码已发送，5分钟内有效。", "Code sent; valid for 5 minutes."),
    "code_wrong": ("验证码错误或已过期。", "Wrong or expired code."),
    "too_many": ("尝试次数太多，请稍后再试。", "Too many tries; please wait."),
    "my_parcels": ("我的包裹", "My parcels"),
    "pickup_code": ("取件码", "Pickup code"),
    "consent_title": ("快递柜投递授权", "Locker delivery consent"),
    "consent_text": ("同意快递员把我的包裹放入村里的快递柜或驿站（取件免费）。",
                     "I agree that couriers may put my parcels in the village locker or station (pickup is free)."),
    "consent_granted": ("已同意", "Granted"),
    "consent_refused": ("不同意", "Refused"),
    "consent_unknown": ("未选择", "Not chosen"),
    "grant": ("同意", "Agree"),
    "refuse": ("不同意", "Refuse"),
    "door_help": ("需要送货上门帮助", "I need door-to-door help"),
    "new_code": ("重新获取取件码", "Get a new pickup code"),
    "not_received_btn": ("我没有收到", "I did not receive it"),
    "reported": ("已记录，工作人员会核查。", "Recorded; staff will check."),
    "new_code_sent": ("新取件码已通过短信发送。", "A new code was sent by SMS."),
    "no_my_parcels": ("没有待取的包裹。", "No parcels for you."),
    "done": ("已完成", "Done"),
    "refused": ("被拒绝", "Refused"),
    "station_health": ("站点与快递柜状态", "Stations and lockers"),
    "seen_ago": ("前", "ago"),
    "cancelled": ("已取消", "cancelled"),
    "void": ("已取消", "cancelled"),
    "stale_for": ("超过 {m} 分钟没有消息", "no word for over {m} min"),
    "unit_h": ("小时", "h"),
    "unit_d": ("天", "d"),
    "unit_min": ("分钟", "min"),
    "unit_pct": ("%", "%"),
    "unit_parcels_day": ("件/天", "parcels/day"),
    "unit_km": ("公里", "km"),
    "unit_people": ("人", "people"),
    "unit_villages": ("个村", "villages"),
    "unit_yuan": ("元", "yuan"),
    "locker_n": ("{n}号柜", "locker {n}"),
    "comp_n": ("{n}号格口", "compartment {n}"),
    "search": ("搜索", "Search"),
    "search_hint": ("站点、村或乡镇", "station, village or town"),
    "page_n": ("第 {p} / {n} 页", "page {p} of {n}"),
    "prev_page": ("上一页", "Previous"),
    "next_page": ("下一页", "Next"),
    "n_stations": ("共 {n} 个站点", "{n} stations"),
    "no_match": ("没有符合条件的站点。", "No station matches."),
    "clear": ("清除", "Clear"),
    "deposited_at": ("入柜时间", "Put in the locker"),
    "pickup_by": ("请在此前取件", "Pick up by"),
    "address": ("地址", "Address"),
    "station_phone": ("电话", "Phone"),
    "hours_open": ("营业时间", "Opening hours"),
    "not_received_ask": ("确定没有收到这个包裹吗？工作人员会联系您核查。",
                         "Are you sure you did not receive this parcel? Staff will call you to check."),
    "not_received_yes": ("确定，我没有收到", "Yes, I did not receive it"),
    "cancel": ("取消", "Cancel"),
    "not_received_state": ("已报告没有收到，工作人员核查中", "Reported as not received; staff are checking"),
    "not_received_done": ("已报告没有收到，已处理", "Reported as not received; handled"),
    "door_help_title": ("送货上门", "Door-to-door delivery"),
    "door_help_text": ("行动不便（老年人、残疾人）可以请驿站把包裹送到家。",
                       "If you cannot easily get about (elderly or disabled), the station can bring parcels home."),
    "door_help_on": ("已开启：包裹会送到家", "On: parcels are brought home"),
    "door_help_off": ("未开启", "Off"),
    "door_help_turn_on": ("开启送货上门", "Turn on door-to-door"),
    "door_help_turn_off": ("关闭送货上门", "Turn off door-to-door"),
    "phone_invalid": ("请输入11位手机号，以1开头（如 13800138000）。",
                      "Type an 11-digit mainland mobile number starting with 1 (e.g. 13800138000)."),
    "bad_command": ("没有这个操作。", "No such action."),
    "bad_filter": ("没有这个筛选条件，已显示全部。", "No such filter; showing all."),
    "bad_period": ("统计期只能是 {p} 天，已显示 {d} 天。", "The period is one of {p} days; showing {d}."),
    "pct_share": ("占比", "Share"),
    "total": ("合计", "Total"),
    "at_station": ("在驿站", "at the station"),
    "uplink_quiet": ("没有消息", "no word"),
    "expired": ("已过期", "expired"),
    "wait_under": ("{x}以内", "under {x}"),
    "station_code": ("站点编号", "Station code"),
    "oldest_wait_days": ("最久等待(天)", "Longest wait (days)"),
    # the steps of a parcel's timeline: what happened at each (its status after is in the plain keys)
    "step.preadvised": ("快递公司已预报", "carrier announced it"),
    "step.deposited": ("已放入快递柜", "put in the locker"),
    "step.notified": ("已发取件短信", "pickup SMS sent"),
    "step.overdue": ("超期未取", "not picked up in time"),
    "wait_over": ("{x}以上", "over {x}"),
    "op.code_sync": ("下发新取件码", "New pickup code"),
    "op.fw_rollout": ("固件升级", "Firmware update"),
    "op.config": ("更新设置", "Settings update"),
    "src.sweep": ("系统自动", "automatic"),
    "src.staff": ("工作人员 {who}", "staff member {who}"),
    "src.carrier": ("快递公司预报", "carrier's advance notice"),
    "src.terminal": ("驿站终端", "station terminal"),
    "src.locker": ("{locker}", "{locker}"),
    "src.handover": ("驿站交付", "handed over at the station"),
    # errors a server answers with (the cloud's refused actions; the terminal's error codes)
    "err.needs_reason": ("{op}需要填写原因。", "{op} needs a reason."),
    "err.needs_compartment": ("{op}需要选择快递柜和格口。", "{op} needs a locker and a compartment."),
    "err.unknown_op": ("没有这个操作。", "No such action."),
    "err.role_may_not": ("您的角色不能执行{op}。", "Your role may not do {op}."),
    "err.own_station": ("驿站管理员只能操作自己的站点。", "A station agent acts only on their own station."),
    "err.no_locker": ("这个站点没有{locker}。", "This station has no {locker}."),
    "err.no_compartment_n": ("{locker}没有{comp}。", "{locker} has no {comp}."),
    "err.open_limit": ("远程开门次数已到上限（{limit}），请稍后再试。",
                       "Remote-open limit reached ({limit}); try again later."),
    "err.bad_pin": ("PIN 码错误", "Wrong PIN"),
    "err.locked": ("尝试过多，请稍后再试（秒）：", "Too many tries; wait (s):"),
    "err.consent_refused": ("收件人拒绝投柜，请联系收件人改为驿站或上门交付",
                            "The recipient refused locker delivery: hand it over at the station or door"),
    "err.consent_unknown": ("请先电话征得收件人同意", "Ask the recipient by phone first"),
    "err.no_compartment": ("没有合适的空格口", "No free compartment of that size"),
    "err.locker_offline": ("快递柜离线", "Locker offline"),
    "err.locker_refused": ("快递柜拒绝开门", "The locker refused to open"),
    "err.bad_code": ("取件码错误", "Wrong code"),
    "err.storage": ("存储故障", "Storage fault"),
    "err.not_found_parcel": ("该格口已没有待登记的包裹", "That compartment has no found parcel any more"),
    "err.unknown_locker": ("没有这个快递柜", "No such locker"),
    "err.unknown_parcel": ("没有这个包裹", "No such parcel"),
    "err.role": ("您的角色不能这样操作", "Your role may not do that"),
    "err.carrier": ("这个包裹不属于您的快递公司", "That parcel is not your carrier's"),
    "err.not_waiting": ("这个包裹已不在待取状态", "That parcel is no longer waiting"),
    "err.not_door_to_door": ("收件人没有申请送货上门", "The recipient did not ask for door-to-door help"),
    "err.rate_limited": ("操作太频繁，请稍后再试（秒）：", "Too often; wait (s):"),
    "err.no_such_compartment": ("没有这个格口", "No such compartment"),
    "err.no_board_lockers": ("这个站点不能用取件码开柜", "This station has no code pickup"),
    "err.unauthorized": ("请重新登录", "Please log in again"),
    "err.login": ("请重新登录", "Please log in again"),
    "err.bad_text": ("内容里有不能用的字符", "The text has characters that cannot be used"),
    # the station terminal (gateway/terminal_static/app.js reads these from /terminal/words.json)
    "term.logout": ("退出", "Log out"),
    "term.login_title": ("驿站终端登录", "Station terminal"),
    "term.user": ("姓名", "Name"),
    "term.pin": ("PIN 码（6 位以上）", "PIN (6 digits or more)"),
    "term.login": ("登录", "Log in"),
    "term.pickup_title": ("取件（输入取件码）", "Pick up (type your code)"),
    "term.code": ("6 位取件码", "6-digit pickup code"),
    "term.pickup": ("取件", "Pick up"),
    "term.deposit_title": ("快递员投递", "Courier deposit"),
    "term.waybill": ("运单号", "Waybill"),
    "term.scan_hint": ("扫描枪扫码会自动填入", "A scanned barcode fills this in"),
    "term.phone": ("收件人手机", "Recipient phone"),
    "term.size": ("格口大小", "Compartment size"),
    "term.size_S": ("小", "Small"),
    "term.size_M": ("中", "Medium"),
    "term.size_L": ("大", "Large"),
    "term.consent_ask": ("收件人尚未授权投柜：我已电话征得收件人同意",
                         "Recipient has not consented to lockers: I asked by phone and they agreed"),
    "term.open_door": ("分配格口并开门", "Pick a compartment and open"),
    "term.tab_waiting": ("待取包裹", "Waiting"),
    "term.tab_d2d": ("送货上门", "Door to door"),
    "term.tab_outbound": ("寄件", "Send (寄件)"),
    "term.tab_fault": ("报修", "Report fault"),
    "term.where": ("柜/格口", "Locker/comp."),
    "term.since": ("入柜时间", "Since"),
    "term.d2d_hint": ("行动不便的村民：取出包裹并送货上门后点击“已送达”。",
                      "Villagers who need help: take the parcel out, deliver it, then press Delivered."),
    "term.carrier": ("快递公司", "Carrier"),
    "term.sender_name": ("寄件人", "Sender"),
    "term.sender_phone": ("寄件人手机", "Sender phone"),
    "term.dest": ("目的地", "Destination"),
    "term.weight": ("重量（克）", "Weight (g)"),
    "term.weight_unit": ("克", "g"),
    "term.produce": ("农产品（如有）", "Farm produce (if any)"),
    "term.take_in": ("收件并计费", "Take in and charge"),
    "term.locker": ("快递柜", "Locker"),
    "term.compartment": ("格口号", "Compartment"),
    "term.fault_text": ("问题描述（如：柜门打不开）", "What is wrong (e.g. door won't open)"),
    "term.report": ("提交报修", "Report"),
    "term.handed": ("已送达（开柜取出）", "Delivered (open and take out)"),
    "term.up": ("云端在线", "Cloud online"),
    "term.down": ("离线运行", "Working offline"),
    "term.opening": ("请把包裹放入", "Put the parcel into"),
    "term.door": ("放好后关门", "then close the door"),
    "term.receipt": ("投递凭条", "Deposit receipt"),
    "term.deposited": ("已入柜", "Deposited"),
    "term.void": ("格口未检测到包裹，已取消", "No parcel detected; cancelled"),
    "term.ref": ("单号", "Ref"),
    "term.at": ("时间", "Time"),
    "term.fee": ("运费", "Fee"),
    "term.yuan": ("元", "yuan"),
    "term.reported": ("已记录报修：", "Fault recorded:"),
    "term.opened": ("已开门：", "Opened:"),
    "term.none": ("暂无", "None"),
    "term.sent": ("已记录", "Recorded"),
    "term.tab_found": ("发现包裹", "Found parcels"),
    "term.found_hint": ("格口里检测到没有登记的包裹：扫描运单号、填写收件人手机后登记，取件码短信将照常发出。",
                        "A compartment holds a parcel nobody registered: scan its waybill and type the recipient's "
                        "phone; the pickup code goes out by SMS as for a deposit."),
    "term.register": ("登记", "Register"),
    "term.register_found": ("登记并发送取件码", "Register and send the code"),
    "term.found_done": ("已登记，取件码已发给收件人。", "Registered; the code is on its way to the recipient."),
    "term.locker_n": ("{n}号柜", "locker {n}"),
    "term.comp_n": ("{n}号格口", "compartment {n}"),
    "term.switch_lang": ("English", "中文"),
    "term.station": ("驿站", "Station"),
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


def section(prefix: str, lang: str) -> dict[str, str]:
    """Every entry under `prefix` (such as `term.`), with the prefix taken off: the terminal's words as JSON."""
    idx = LANGS.index(lang)
    return {k[len(prefix):]: v[idx] for k, v in STRINGS.items() if k.startswith(prefix)}
