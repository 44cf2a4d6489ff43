"use strict";
// Station terminal: Chinese first, English on request; talks only to the gateway, so it works offline.
const T = {
  zh: {logout: "退出", login_title: "驿站终端登录", user: "姓名", pin: "PIN 码（6 位以上）", login: "登录", pickup_title: "取件（输入取件码）",
    code: "6 位取件码", pickup: "取件", deposit_title: "快递员投递", waybill: "运单号", scan_hint: "扫描枪扫码会自动填入",
    phone: "收件人手机", size: "格口大小", size_S: "小", size_M: "中", size_L: "大",
    consent_ask: "收件人尚未授权投柜：我已电话征得收件人同意", open_door: "分配格口并开门",
    tab_waiting: "待取包裹", tab_d2d: "送货上门", tab_outbound: "寄件", tab_fault: "报修",
    where: "柜/格口", since: "入柜时间", d2d_hint: "行动不便的村民：取出包裹并送货上门后点击“已送达”。",
    carrier: "快递公司", sender_name: "寄件人", sender_phone: "寄件人手机", dest: "目的地", weight: "重量（克）",
    produce: "农产品（如有）", take_in: "收件并计费", locker: "快递柜", compartment: "格口号",
    fault_text: "问题描述（如：柜门打不开）", report: "提交报修", handed: "已送达（开柜取出）",
    up: "云端在线", down: "离线运行", opening: "请把包裹放入", door: "号格口，放好后关门",
    receipt: "投递凭条", deposited: "已入柜", void: "格口未检测到包裹，已取消", ref: "单号", at: "时间", fee: "运费",
    yuan: "元", reported: "已记录报修，编号", bad_pin: "PIN 码错误", locked: "尝试过多，请稍后再试（秒）：",
    consent_refused: "收件人拒绝投柜，请联系收件人改为驿站或上门交付", consent_unknown: "请先电话征得收件人同意",
    sender_id: "寄件人身份证号（实名，仅保存后 4 位）", inspected: "已当面验视，无禁寄物品", inspection_required: "请先验视包裹",
    bad_id: "身份证号不正确", tab_charge: "二次收费", charge_hint: "村民反映被额外收费（取件本应免费）：记录下来，县里会核查。",
    charge_kind: "收费名目", charge_amount: "金额（元）", charge_note: "说明", charge_record: "记录收费",
    fee_pickup: "取件费", fee_delivery: "派送费", fee_remote_surcharge: "偏远加收", fee_storage: "保管费", fee_other: "其他",
    charge_done: "已记录收费", collect_title: "待揽收寄件", collect_waybill: "本公司运单号（扫码）", collect: "揽收",
    collected: "已揽收", not_collectable: "该寄件已揽收或不属于本公司",
    no_compartment: "没有合适的空格口", locker_offline: "快递柜离线", locker_refused: "快递柜拒绝开门",
    bad_code: "取件码错误", opened: "已开门，格口：", none: "暂无", sent: "已记录", storage: "存储故障",
    tab_found: "发现包裹", found_hint: "格口里检测到没有登记的包裹：扫描运单号、填写收件人手机后登记，取件码短信将照常发出。",
    register: "登记", register_found: "登记并发送取件码", found_done: "已登记，取件码已发给收件人。单号：",
    not_found_parcel: "该格口已没有待登记的包裹"},
  en: {logout: "Log out", login_title: "Station terminal", user: "Name", pin: "PIN (6 digits or more)", login: "Log in", pickup_title: "Pick up (type your code)",
    code: "6-digit pickup code", pickup: "Pick up", deposit_title: "Courier deposit", waybill: "Waybill",
    scan_hint: "A scanned barcode fills this in", phone: "Recipient phone", size: "Compartment size",
    size_S: "Small", size_M: "Medium", size_L: "Large",
    consent_ask: "Recipient has not consented to lockers: I asked by phone and they agreed", open_door: "Pick a compartment and open",
    tab_waiting: "Waiting", tab_d2d: "Door to door", tab_outbound: "Send (寄件)", tab_fault: "Report fault",
    where: "Locker/comp.", since: "Since", d2d_hint: "Villagers who need help: take the parcel out, deliver it, then press Delivered.",
    carrier: "Carrier", sender_name: "Sender", sender_phone: "Sender phone", dest: "Destination", weight: "Weight (g)",
    produce: "Farm produce (if any)", take_in: "Take in and charge", locker: "Locker", compartment: "Compartment",
    fault_text: "What is wrong (e.g. door won't open)", report: "Report", handed: "Delivered (open and take out)",
    up: "Cloud online", down: "Working offline", opening: "Put the parcel into compartment", door: "then close the door",
    receipt: "Deposit receipt", deposited: "Deposited", void: "No parcel detected; cancelled", ref: "Ref", at: "Time",
    sender_id: "Sender's ID number (real name; only the last 4 kept)", inspected: "Inspected in person; nothing forbidden",
    inspection_required: "Inspect the parcel first", bad_id: "Not a valid ID number", tab_charge: "Extra charges",
    charge_hint: "A villager says they were charged extra (pickup is free): record it for the county.",
    charge_kind: "Charged for", charge_amount: "Amount (yuan)", charge_note: "Note", charge_record: "Record the charge",
    fee_pickup: "pickup fee", fee_delivery: "delivery fee", fee_remote_surcharge: "remote surcharge", fee_storage: "storage fee",
    fee_other: "other", charge_done: "Charge recorded", collect_title: "Outbound parcels to collect",
    collect_waybill: "Our waybill (scan)", collect: "Collect", collected: "Collected",
    not_collectable: "Collected already, or not your carrier's",
    fee: "Fee", yuan: "yuan", reported: "Fault recorded:", bad_pin: "Wrong PIN", locked: "Too many tries; wait (s):",
    consent_refused: "The recipient refused locker delivery: hand it over at the station or door",
    consent_unknown: "Ask the recipient by phone first", no_compartment: "No free compartment of that size",
    locker_offline: "Locker offline", locker_refused: "The locker refused to open", bad_code: "Wrong code",
    opened: "Opened compartment:", none: "None", sent: "Recorded", storage: "Storage fault",
    tab_found: "Found parcels", found_hint: "A compartment holds a parcel nobody registered: scan its waybill and type the recipient's phone; the pickup code goes out by SMS as for a deposit.",
    register: "Register", register_found: "Register and send the code", found_done: "Registered; the code is on its way to the recipient. Ref:",
    not_found_parcel: "That compartment has no found parcel any more"},
};
let lang = localStorage.getItem("jc-lang") || "zh";
let token = sessionStorage.getItem("jc-token");
let me = JSON.parse(sessionStorage.getItem("jc-me") || "null");
let info = null, scanSeen = null, timers = [], foundAt = null;
const $ = (id) => document.getElementById(id);
const t = (k) => T[lang][k] || k;

function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  $("lang").textContent = lang === "zh" ? "English" : "中文";
  if (info) { $("uplink").textContent = t(info.uplink); }
}
async function api(method, path, body) {
  const r = await fetch("/api/v1/terminal" + path, {method, headers: {"Content-Type": "application/json",
    ...(token ? {Authorization: "Bearer " + token} : {})}, body: body ? JSON.stringify(body) : undefined});
  const data = await r.json().catch(() => ({}));
  if (r.status === 401 && path !== "/login") { logout(); }
  if (!r.ok) { const d = data.detail || {}; const e = new Error(d.error || ("HTTP " + r.status)); e.info = d; throw e; }
  return data;
}
function errText(e) { return e.message === "locked" ? t("locked") + " " + e.info.secs : t(e.message); }
function show(view) {
  ["v-login", "v-courier", "v-agent"].forEach((v) => $(v).classList.toggle("hidden", v !== view));
  $("logout").classList.toggle("hidden", view === "v-login");
  $("who").textContent = me ? me.name : "";
}
function every(ms, fn) { timers.push(setInterval(fn, ms)); }
function stopTimers() { timers.forEach(clearInterval); timers = []; }
function fmtTime(s) { return new Date(s * 1000).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB"); }
function esc(s) { const d = document.createElement("div"); d.textContent = s == null ? "" : String(s); return d.innerHTML; }

async function loadInfo() {
  try {
    info = await api("GET", "/info");
    $("station-name").textContent = info.name || info.station; $("station-id").textContent = info.station;
    $("uplink").className = "badge " + info.uplink; $("uplink").textContent = t(info.uplink);
    $("f-pickup").classList.toggle("hidden", !info.board_pickup);
    // carriers are codes (sent) with names (shown)
    const opts = info.carriers.map((c) => `<option value="${esc(c.code)}">${esc(lang === "en" ? c.en : c.zh)}</option>`).join("");
    ["ob-carrier", "fd-carrier", "ch-carrier"].forEach((id) => { if (!$(id).options.length) $(id).innerHTML = opts; });
    $("ft-locker").innerHTML = info.lockers.map((l) => `<option>${esc(l.id)}</option>`).join("");
    const pick = $("user").value;
    $("user").innerHTML = info.users.map((u) => `<option value="${esc(u.id)}">${esc(u.name)}</option>`).join("");
    if (pick) { $("user").value = pick; }
  } catch (e) { /* the next poll tries again */ }
}
function logout() {
  if (token) { fetch("/api/v1/terminal/logout", {method: "POST", headers: {Authorization: "Bearer " + token}}); }
  token = null; me = null; sessionStorage.clear(); stopTimers(); show("v-login");
}
function start() {
  stopTimers(); every(5000, loadInfo);
  if (!me) { show("v-login"); return; }
  scanSeen = me.scan_n || 0;
  // a scanned waybill fills the form in front of the user: the deposit form, or the found-parcel form
  const target = me.role === "courier" ? ["waybill", "phone"] : ["fd-waybill", "fd-phone"];
  every(400, async () => {
    try {
      const s = await api("GET", "/scans?after=" + scanSeen);
      if (s.scans.length) { const last = s.scans[s.scans.length - 1]; scanSeen = last.n; $(target[0]).value = last.waybill; $(target[1]).focus(); }
    } catch (e) { /* shown on the next action */ }
  });
  if (me.role === "courier") { show("v-courier"); loadCollect(); every(5000, loadCollect); }
  else { show("v-agent"); loadParcels(); every(3000, loadParcels); }
}

$("lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("jc-lang", lang); applyLang(); if (me && me.role === "agent") loadParcels(); };
$("logout").onclick = logout;
$("f-login").onsubmit = async (ev) => {
  ev.preventDefault(); $("login-err").textContent = "";
  try {
    const r = await api("POST", "/login", {user: $("user").value, pin: $("pin").value});
    token = r.token; me = r; sessionStorage.setItem("jc-token", token); sessionStorage.setItem("jc-me", JSON.stringify(r));
    $("pin").value = ""; start();
  } catch (e) { $("login-err").textContent = errText(e); $("pin").value = ""; }
};
$("f-pickup").onsubmit = async (ev) => {
  ev.preventDefault();
  try { const r = await api("POST", "/pickup", {code: $("pickup-code").value}); $("pickup-msg").textContent = t("opened") + " " + r.locker + " / " + r.cs.join(", "); }
  catch (e) { $("pickup-msg").textContent = errText(e); }
  $("pickup-code").value = "";
};
$("f-deposit").onsubmit = async (ev) => {
  ev.preventDefault(); $("deposit-err").textContent = ""; $("receipt").classList.add("hidden");
  const body = {waybill: $("waybill").value.trim(), phone: $("phone").value.trim(),
    size: document.querySelector("input[name=size]:checked").value, consent_asked: $("consent-asked").checked};
  try {
    const d = await api("POST", "/deposit", body);
    $("f-deposit").classList.add("hidden");
    $("opening").innerHTML = `${esc(t("opening"))}<strong>${esc(d.locker)} · ${esc(d.c)}</strong>${esc(t("door"))}`;
    $("opening").classList.remove("hidden");
    const poll = setInterval(async () => {
      let s; try { s = await api("GET", "/deposit/" + d.ref); } catch (e) { return; }
      if (s.state === "opening") return;
      clearInterval(poll); $("opening").classList.add("hidden"); $("f-deposit").classList.remove("hidden");
      $("f-deposit").reset(); $("consent-box").classList.add("hidden");
      if (s.state === "deposited") {
        $("receipt").innerHTML = `<h2>${esc(t("receipt"))} · ${esc(t("deposited"))}</h2><dl>
          <dt>${esc(t("waybill"))}</dt><dd id="r-waybill">${esc(s.waybill)}</dd><dt>${esc(t("phone"))}</dt><dd>${esc(s.phone)}</dd>
          <dt>${esc(t("where"))}</dt><dd id="r-where">${esc(s.locker)} · ${esc(s.c)} (${esc(t("size_" + s.size))})</dd>
          <dt>${esc(t("ref"))}</dt><dd>${esc(s.ref)}</dd><dt>${esc(t("at"))}</dt><dd>${esc(fmtTime(s.at))}</dd></dl>`;
        $("receipt").classList.remove("hidden");
      } else { $("deposit-err").textContent = t("void"); }
    }, 400);
    timers.push(poll);
  } catch (e) {
    if (e.message === "consent_unknown") $("consent-box").classList.remove("hidden");
    $("deposit-err").textContent = errText(e);
  }
};
document.querySelectorAll(".tabs button").forEach((b) => { b.onclick = () => {
  document.querySelectorAll(".tabs button").forEach((x) => x.classList.toggle("on", x === b));
  document.querySelectorAll(".tab").forEach((x) => x.classList.toggle("hidden", x.id !== "t-" + b.dataset.tab));
}; });
async function loadParcels() {
  let r; try { r = await api("GET", "/parcels"); } catch (e) { return; }
  const row = (p) => `<td>${esc(p.waybill)}</td><td>${esc(p.phone)}</td><td>${esc(p.locker)} · ${esc(p.c)}</td>`;
  $("waiting-rows").innerHTML = r.parcels.map((p) => `<tr class="${p.door_to_door ? "d2d" : ""}">${row(p)}<td>${esc(fmtTime(p.since))}</td></tr>`).join("")
    || `<tr><td colspan="4" class="muted">${esc(t("none"))}</td></tr>`;
  $("d2d-rows").innerHTML = r.door_to_door.map((p) => `<tr>${row(p)}<td><button data-ref="${esc(p.ref)}" class="handover">${esc(t("handed"))}</button></td></tr>`).join("")
    || `<tr><td colspan="4" class="muted">${esc(t("none"))}</td></tr>`;
  document.querySelectorAll("button.handover").forEach((b) => { b.onclick = async () => {
    try { await api("POST", "/handover", {ref: b.dataset.ref}); $("d2d-msg").textContent = t("sent") + ": " + b.dataset.ref; loadParcels(); }
    catch (e) { $("d2d-msg").textContent = errText(e); }
  }; });
  loadFound();
}
async function loadFound() {
  let r; try { r = await api("GET", "/found"); } catch (e) { return; }
  $("tab-found").textContent = t("tab_found") + (r.found.length ? " (" + r.found.length + ")" : "");
  $("tab-found").classList.toggle("warn", r.found.length > 0);
  $("found-rows").innerHTML = r.found.map((f) => `<tr><td>${esc(f.locker)} · ${esc(f.c)}</td><td>${esc(t("size_" + f.size))}</td>
    <td><button class="adopt" data-locker="${esc(f.locker)}" data-c="${esc(f.c)}">${esc(t("register"))}</button></td></tr>`).join("")
    || `<tr><td colspan="3" class="muted">${esc(t("none"))}</td></tr>`;
  document.querySelectorAll("button.adopt").forEach((b) => { b.onclick = () => {
    foundAt = {locker: b.dataset.locker, c: parseInt(b.dataset.c, 10)};
    $("fd-where").textContent = foundAt.locker + " · " + foundAt.c; $("found-msg").textContent = "";
    $("f-found").classList.remove("hidden"); $("fd-waybill").focus();
  }; });
}
$("f-found").onsubmit = async (ev) => {
  ev.preventDefault();
  if (!foundAt) return;
  try {
    const r = await api("POST", "/found", {locker: foundAt.locker, c: foundAt.c, waybill: $("fd-waybill").value.trim(),
      phone: $("fd-phone").value.trim(), carrier: $("fd-carrier").value, consent_asked: $("fd-consent-asked").checked});
    $("found-msg").textContent = t("found_done") + " " + r.ref;
    $("f-found").reset(); $("f-found").classList.add("hidden"); $("fd-consent-box").classList.add("hidden"); foundAt = null;
    loadFound();
  } catch (e) {
    if (e.message === "consent_unknown") $("fd-consent-box").classList.remove("hidden");
    $("found-msg").textContent = errText(e);
  }
};
$("t-outbound").onsubmit = async (ev) => {
  ev.preventDefault();
  try {
    const r = await api("POST", "/outbound", {carrier: $("ob-carrier").value, sender_name: $("ob-name").value.trim(),
      sender_phone: $("ob-phone").value.trim(), dest: $("ob-dest").value.trim(), weight_g: parseInt($("ob-weight").value, 10),
      produce: $("ob-produce").value.trim(), sender_id: $("ob-id").value.trim(), inspected: $("ob-inspected").checked});
    $("ob-id").value = "";
    $("ob-receipt").innerHTML = `<h2>${esc(t("receipt"))}</h2><dl><dt>${esc(t("ref"))}</dt><dd id="ob-ref">${esc(r.ref)}</dd>
      <dt>${esc(t("carrier"))}</dt><dd>${esc(r.carrier)}</dd><dt>${esc(t("dest"))}</dt><dd>${esc(r.dest)}</dd>
      <dt>${esc(t("weight"))}</dt><dd>${esc(r.weight_g)}</dd><dt>${esc(t("fee"))}</dt><dd id="ob-fee">${(r.fee_cents / 100).toFixed(2)} ${esc(t("yuan"))}</dd></dl>`;
    $("ob-receipt").classList.remove("hidden");
  } catch (e) { $("ob-receipt").textContent = errText(e); $("ob-receipt").classList.remove("hidden"); }
};
$("t-fault").onsubmit = async (ev) => {
  ev.preventDefault();
  const c = $("ft-c").value ? parseInt($("ft-c").value, 10) : null;
  try {
    const r = await api("POST", "/fault", {locker: $("ft-locker").value, c, phone: $("ft-phone").value.trim(), text: $("ft-text").value.trim()});
    $("ft-msg").textContent = t("reported") + " " + r.locker + (r.c ? " · " + r.c : ""); $("t-fault").reset();
  } catch (e) { $("ft-msg").textContent = errText(e); }
};
$("t-charge").onsubmit = async (ev) => {
  ev.preventDefault();
  const [y, f = ""] = $("ch-amount").value.trim().split(".");
  try {
    await api("POST", "/charge", {carrier: $("ch-carrier").value, kind: $("ch-kind").value,
      cents: parseInt(y, 10) * 100 + parseInt((f + "00").slice(0, 2), 10), waybill: $("ch-waybill").value.trim(),
      phone: $("ch-phone").value.trim(), text: $("ch-text").value.trim()});
    $("ch-msg").textContent = t("charge_done"); $("t-charge").reset();
  } catch (e) { $("ch-msg").textContent = errText(e); }
};
async function loadCollect() {
  let r; try { r = await api("GET", "/outbound"); } catch (e) { return; }
  $("collect-rows").innerHTML = r.outbound.map((o) => `<tr><td>${esc(o.ref)}</td><td>${esc(o.dest)}</td><td>${esc(o.weight_g)}</td>
    <td><button class="collect" data-ref="${esc(o.ref)}">${esc(t("collect"))}</button></td></tr>`).join("")
    || `<tr><td colspan="4" class="muted">${esc(t("none"))}</td></tr>`;
  document.querySelectorAll("button.collect").forEach((b) => { b.onclick = async () => {
    try {
      await api("POST", "/outbound/" + encodeURIComponent(b.dataset.ref) + "/collect", {waybill: $("co-waybill").value.trim()});
      $("co-msg").textContent = t("collected") + ": " + b.dataset.ref; $("co-waybill").value = ""; loadCollect();
    } catch (e) { $("co-msg").textContent = errText(e); }
  }; });
}
applyLang(); loadInfo().then(start);
