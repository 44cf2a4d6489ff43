"use strict";
// Station terminal: Chinese first, English on request; talks only to the gateway, so it works offline.
// the words come from the one table (jincun/i18n.py), written into the page by the gateway
const T = JSON.parse(document.getElementById("words").textContent);
let lang = localStorage.getItem("jc-lang") || "zh";
let token = sessionStorage.getItem("jc-token");
let me = JSON.parse(sessionStorage.getItem("jc-me") || "null");
let info = null, scanSeen = null, timers = [], foundAt = null;
const $ = (id) => document.getElementById(id);
const t = (k) => T[lang][k] || k;

function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  $("lang").textContent = t("switch_lang");
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
function errText(e) { return (e.message === "locked" || e.message === "rate_limited") ? t(e.message) + " " + e.info.secs : t(e.message); }
function show(view) {
  ["v-login", "v-courier", "v-agent"].forEach((v) => $(v).classList.toggle("hidden", v !== view));
  $("logout").classList.toggle("hidden", view === "v-login");
  $("who").textContent = me ? me.name : "";
}
function every(ms, fn) { timers.push(setInterval(fn, ms)); }
function stopTimers() { timers.forEach(clearInterval); timers = []; }
// station time is China Standard Time, whatever the terminal's own clock zone
function fmtTime(s) { return new Date(s * 1000).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", {timeZone: "Asia/Shanghai", dateStyle: "short", timeStyle: "short"}); }
// a locker and compartment as people say them: 1号柜 2号格口 (locker 1, compartment 2)
function where(locker, c) {
  const n = /(\d+)$/.exec(String(locker));
  const lk = n ? t("locker_n").replace("{n}", n[1]) : String(locker);
  return c == null ? lk : lk + (lang === "zh" ? " " : ", ") + t("comp_n").replace("{n}", c);
}
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
    // the desk's choice of a deposit's carrier, from the station's carriers: Chinese first with English
    if (!$("d-carrier").options.length) {
      $("d-carrier").innerHTML = `<option value="">${esc(T.zh.carrier_pick)} / ${esc(T.en.carrier_pick)}</option>` +
        info.carriers.map((c) => `<option value="${esc(c.code)}">${esc(c.zh)} · ${esc(c.en)}</option>`).join("");
    }
    $("ft-locker").innerHTML = info.lockers.map((l) => `<option>${esc(l.id)}</option>`).join("");
    const pick = $("user").value;
    $("user").innerHTML = info.users.map((u) => `<option value="${esc(u.id)}">${esc(u.name)}</option>`).join("");
    if (pick) { $("user").value = pick; }
  } catch (e) { /* the next poll tries again */ }
}
function logout() {
  if (token) { fetch("/api/v1/terminal/logout", {method: "POST", headers: {Authorization: "Bearer " + token}}); }
  token = null; me = null; sessionStorage.clear(); stopTimers(); show("v-login");
  $("carrier-box").classList.add("hidden");
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
  if (me.role === "courier") { show("v-courier"); loadCollect(); loadReturns(); every(5000, () => { loadCollect(); loadReturns(); }); }
  else { show("v-agent"); loadParcels(); every(3000, loadParcels); }
}

$("lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("jc-lang", lang); applyLang(); if (me && me.role === "agent") loadParcels(); if (me && me.role === "courier") loadReturns(); };
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
  try {
    // one code opens the recipient's compartments on every lock board of the station
    const r = await api("POST", "/pickup", {code: $("pickup-code").value});
    $("pickup-msg").textContent = t("opened") + " " + (r.opened || [r]).flatMap((o) => o.cs.map((c) => where(o.locker, c))).join(", ");
  }
  catch (e) { $("pickup-msg").textContent = errText(e); }
  $("pickup-code").value = "";
};
$("f-deposit").onsubmit = async (ev) => {
  ev.preventDefault(); $("deposit-err").textContent = ""; $("receipt").classList.add("hidden");
  const body = depositFields();
  try {
    const d = await api("POST", "/deposit", body);
    $("f-deposit").classList.add("hidden");
    $("opening").innerHTML = `${esc(t("opening"))}<strong>${esc(where(d.locker, d.c))}</strong>${esc(t("door"))}`;
    $("opening").classList.remove("hidden");
    const poll = setInterval(async () => {
      let s; try { s = await api("GET", "/deposit/" + d.ref); } catch (e) { return; }
      if (s.state === "opening") return;
      clearInterval(poll); $("opening").classList.add("hidden"); $("f-deposit").classList.remove("hidden");
      $("f-deposit").reset(); $("consent-box").classList.add("hidden");
      if (s.state === "deposited") {
        $("receipt").innerHTML = `<h2>${esc(t("receipt"))} · ${esc(t("deposited"))}</h2><dl>
          <dt>${esc(t("waybill"))}</dt><dd id="r-waybill">${esc(s.waybill)}</dd><dt>${esc(t("phone"))}</dt><dd>${esc(s.phone)}</dd>
          <dt>${esc(t("where"))}</dt><dd id="r-where">${esc(where(s.locker, s.c))} (${esc(t("size_" + s.size))})</dd>
          <dt>${esc(t("ref"))}</dt><dd>${esc(s.ref)}</dd><dt>${esc(t("at"))}</dt><dd>${esc(fmtTime(s.at))}</dd></dl>`;
        $("receipt").classList.remove("hidden");
      } else { $("deposit-err").textContent = t("void"); }
    }, 400);
    timers.push(poll);
  } catch (e) {
    if (e.message === "consent_unknown") $("consent-box").classList.remove("hidden");
    if (e.message === "carrier_needed") $("carrier-box").classList.remove("hidden");
    $("deposit-err").textContent = errText(e);
  }
};
// a deposit's fields; the carrier once the desk was asked for it (a courier's is their own). The choice stays
// on the form from then on, reset to "choose" for each parcel: left so, the waybill's pre-advice decides
function depositFields() {
  const f = {waybill: $("waybill").value.trim(), phone: $("phone").value.trim(),
    size: document.querySelector("input[name=size]:checked").value, consent_asked: $("consent-asked").checked};
  if (!$("carrier-box").classList.contains("hidden") && $("d-carrier").value) f.carrier = $("d-carrier").value;
  return f;
}
// keypad bookings: parcels gathered here get compartments and one PIN the courier types at the locker
let keypadList = [];
function showKeypadList() {
  $("keypad").classList.toggle("hidden", keypadList.length === 0);
  $("keypad-list").innerHTML = keypadList.map((p) => `<li>${esc(p.waybill)} · ${esc(p.phone)} · ${esc(t("size_" + p.size))}</li>`).join("");
}
$("keypad-add").onclick = () => {
  const f = $("f-deposit");
  if (!f.reportValidity() || keypadList.length >= 8) return;
  keypadList.push(depositFields());
  f.reset(); $("deposit-err").textContent = ""; $("keypad-pin").classList.add("hidden"); showKeypadList();
};
$("keypad-go").onclick = async () => {
  $("keypad-err").textContent = "";
  try {
    const b = await api("POST", "/keypad", {parcels: keypadList});
    keypadList = []; showKeypadList();
    $("keypad-pin").innerHTML = `${esc(t("keypad_pin"))}<strong id="keypad-pin-digits">${esc(b.pin)}</strong>
      ${esc(t("keypad_where"))} ${esc(b.locker)} · ${b.deposits.map((d) => esc(d.c)).join(", ")}`;
    $("keypad-pin").classList.remove("hidden");
  } catch (e) {
    if (e.message === "consent_unknown") $("consent-box").classList.remove("hidden");
    if (e.message === "carrier_needed") {
      // the parcel whose carrier nobody knows goes back into the form, with the carrier to choose
      const i = keypadList.findIndex((p) => p.waybill === e.info.waybill);
      if (i >= 0) {
        const p = keypadList.splice(i, 1)[0]; showKeypadList();
        $("waybill").value = p.waybill; $("phone").value = p.phone;
        document.querySelector(`input[name=size][value=${p.size}]`).checked = true;
      }
      $("carrier-box").classList.remove("hidden");
      $("deposit-err").textContent = errText(e);  // said by the form, where the carrier is chosen
    }
    $("keypad-err").textContent = errText(e);
  }
};
// each view's tabs switch only that view's panes
document.querySelectorAll(".tabs button").forEach((b) => { b.onclick = () => {
  const view = b.closest("section");
  view.querySelectorAll(".tabs button").forEach((x) => x.classList.toggle("on", x === b));
  view.querySelectorAll(".tab").forEach((x) => x.classList.toggle("hidden", x.id !== "t-" + b.dataset.tab));
  if (b.dataset.tab === "returns") loadReturns();
}; });
// 待退回: overdue parcels of this courier's carrier; the courier opens the door and takes each one out
async function loadReturns() {
  let r; try { r = await api("GET", "/returns"); } catch (e) { return; }
  $("tab-returns").textContent = t("tab_returns") + (r.returns.length ? " (" + r.returns.length + ")" : "");
  $("tab-returns").classList.toggle("warn", r.returns.length > 0);
  $("returns-rows").innerHTML = r.returns.map((p) => `<tr><td>${esc(p.waybill)}</td><td>${esc(p.phone)}</td>
    <td>${esc(where(p.locker, p.c))}</td><td>${esc(fmtTime(p.since))}</td>
    <td><button class="take-out" data-ref="${esc(p.ref)}">${esc(t("take_out"))}</button></td></tr>`).join("")
    || `<tr><td colspan="5" class="muted">${esc(t("none"))}</td></tr>`;
  document.querySelectorAll("button.take-out").forEach((b) => { b.onclick = async () => {
    b.disabled = true;
    try { const d = await api("POST", "/returns", {ref: b.dataset.ref}); $("returns-msg").textContent = t("taken_out") + " " + where(d.locker, d.c); }
    catch (e) { $("returns-msg").textContent = errText(e); }
    loadReturns();
  }; });
}
async function loadParcels() {
  let r; try { r = await api("GET", "/parcels"); } catch (e) { return; }
  const row = (p) => `<td>${esc(p.waybill)}</td><td>${esc(p.phone)}</td><td>${esc(where(p.locker, p.c))}</td>`;
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
  $("found-rows").innerHTML = r.found.map((f) => `<tr><td>${esc(where(f.locker, f.c))}</td><td>${esc(t("size_" + f.size))}</td>
    <td><button class="adopt" data-locker="${esc(f.locker)}" data-c="${esc(f.c)}">${esc(t("register"))}</button></td></tr>`).join("")
    || `<tr><td colspan="3" class="muted">${esc(t("none"))}</td></tr>`;
  document.querySelectorAll("button.adopt").forEach((b) => { b.onclick = () => {
    foundAt = {locker: b.dataset.locker, c: parseInt(b.dataset.c, 10)};
    $("fd-where").textContent = where(foundAt.locker, foundAt.c); $("found-msg").textContent = "";
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
    $("ft-msg").textContent = t("reported") + " " + where(r.locker, r.c || null); $("t-fault").reset();
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
