// tollgate operator console: plain JavaScript, no build step, no third-party
// code. Every page reads and writes through the admin API (docs/api.md) with
// the session cookie; writes carry the session's CSRF token.
"use strict";

const S = { name: "", csrf: "", countries: null, timer: null, prevDecisions: null, gen: 0 };

// ---- DOM helpers (text only: nothing from the API is parsed as HTML) ----
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}
const $ = (sel, root) => (root || document).querySelector(sel);
const tag = (cls, text) => el("span", { class: "tag " + cls }, text);
const enc = encodeURIComponent;

function table(headers, rows, empty) {
  if (!rows.length) return el("p", { class: "muted" }, empty || "none");
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}
function kv(obj) {
  return el("table", { class: "kv" }, el("tbody", {}, Object.entries(obj).map(([k, v]) =>
    el("tr", {}, el("td", {}, k), el("td", {}, v instanceof Node ? v : fmt(v))))));
}
function fmt(v) {
  if (v === undefined || v === null || v === "") return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
function when(t) {
  if (!t) return "—";
  const d = new Date(t);
  return isNaN(d) ? t : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}
function flash(msg, ok) {
  const f = $("#flash");
  f.replaceChildren(el("div", { class: ok ? "ok" : "bad", role: "alert" }, msg));
  if (ok) setTimeout(() => { if (f.textContent === msg) f.replaceChildren(); }, 4000);
}

// ---- the API ----
class APIError extends Error {
  constructor(status, body) {
    super((body && body.error) || ("HTTP " + status));
    this.status = status; this.field = body && body.field;
  }
}
async function api(method, path, body, raw) {
  const opt = { method, credentials: "same-origin", headers: {} };
  opt.headers["X-CSRF-Token"] = S.csrf; // needed by writes and by GET /v1/check
  if (body !== undefined) { opt.headers["Content-Type"] = "application/json"; opt.body = JSON.stringify(body); }
  const r = await fetch(path, opt);
  if (raw) return r;
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
  if (r.status === 401 && path !== "/console/session") { showSignIn("Your session ended; sign in again."); }
  if (!r.ok && !(path === "/v1/check" || path.startsWith("/v1/check?"))) throw new APIError(r.status, data);
  return data;
}
// write runs a change and reports it; errors name the field when there is one.
async function write(what, f) {
  try {
    const out = await f();
    flash(what + ": done", true);
    return out;
  } catch (e) {
    flash(what + " refused: " + e.message + (e.field ? " (field " + e.field + ")" : ""), false);
    return undefined;
  }
}
async function countries() {
  if (!S.countries) S.countries = (await api("GET", "/v1/countries")).countries;
  return S.countries;
}

// ---- sign-in ----
function showSignIn(msg) {
  S.name = ""; S.csrf = "";
  if (S.timer) { clearInterval(S.timer); S.timer = null; }
  $("#signin").hidden = false; $("#nav").hidden = true; $("#who").hidden = true;
  $("#view").replaceChildren(); $("#flash").replaceChildren();
  $("#signin-error").textContent = msg || "";
}
function signedIn(s) {
  S.name = s.name; S.csrf = s.csrf;
  $("#signin").hidden = true; $("#nav").hidden = false; $("#who").hidden = false;
  $("#who-name").textContent = s.name;
  route();
}
async function signIn(ev) {
  ev.preventDefault();
  const tok = $("#token").value.trim();
  const r = await fetch("/console/session", { method: "POST", credentials: "same-origin",
    headers: { "Authorization": "Bearer " + tok } });
  $("#token").value = "";
  if (r.ok) { signedIn(await r.json()); return; }
  $("#signin-error").textContent = r.status === 401 ? "Wrong token: sign-in refused." : "Sign-in failed: HTTP " + r.status;
}
async function signOut() {
  try { await api("DELETE", "/console/session"); } catch (_) { /* signed out anyway */ }
  location.hash = "#/overview";
  showSignIn("Signed out.");
}

// ---- router ----
const pages = { overview, accounts, account, operator, "high-risk": highRisk, try: tryCall, audit };
async function route() {
  if (!S.csrf) return;
  if (S.timer) { clearInterval(S.timer); S.timer = null; }
  // Parts stay percent-encoded: a page decodes its own (a name with
  // decodeURIComponent, a query with URLSearchParams, which reads %2B as +).
  const parts = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  const page = pages[parts[0]] ? parts[0] : "overview";
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === page || (page === "account" && a.dataset.page === "accounts"));
  }
  const view = $("#view");
  view.dataset.page = ""; // set again once the page is drawn
  view.replaceChildren(el("p", { class: "muted" }, "loading…"));
  // Routes overlap: a write redraws its page when its answer comes, and
  // the operator may have moved on (or the same page been asked for again)
  // meanwhile. Each page is drawn off the document and shown only by the
  // latest route, so a slower earlier one cannot put its page, or its
  // empty forms, over the one asked for last.
  const gen = ++S.gen;
  const box = el("div");
  box.current = () => gen === S.gen;
  try {
    await pages[page](box, parts.slice(1));
  } catch (e) {
    if (e.status !== 401) box.replaceChildren(el("p", { class: "error" }, "Could not load this page: " + e.message));
  }
  if (gen !== S.gen || !S.csrf) return;
  view.replaceChildren(...box.childNodes);
  view.dataset.page = page;
}

// ---- overview ----
function parseDecisions(text) {
  const by = { allow: 0, reject: 0, screen: 0 }, reasons = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith("tollgate_decisions_total{")) continue;
    const m = line.match(/verdict="([^"]*)",reason="([^"]*)"\}\s+(\S+)/);
    if (!m) continue;
    const n = Number(m[3]);
    by[m[1]] = (by[m[1]] || 0) + n;
    if (m[1] !== "allow") reasons[m[2]] = (reasons[m[2]] || 0) + n;
  }
  return { by, reasons, at: Date.now() };
}
async function overview(view) {
  view.replaceChildren(el("h1", {}, "Overview"));
  const dec = el("div", { class: "card", id: "decisions" });
  const grid = el("div", { class: "grid2" });
  const locks = el("div", { class: "card", id: "locked" }), alerts = el("div", { class: "card", id: "alerts" });
  const stats = el("div", { class: "card", id: "stats" });
  grid.append(locks, alerts);
  view.append(dec, grid, stats);
  const refreshDecisions = async () => {
    const r = await fetch("/metrics", { credentials: "same-origin" });
    const d = parseDecisions(await r.text());
    const prev = S.prevDecisions; S.prevDecisions = d;
    const secs = prev ? (d.at - prev.at) / 1000 : 0;
    const rate = (v) => prev && secs > 0 ? ((d.by[v] - (prev.by[v] || 0)) / secs).toFixed(1) : "…";
    dec.replaceChildren(el("h2", {}, "Decisions by verdict"),
      el("p", { class: "muted" }, "From tollgate_decisions_total on /metrics, every transport; per second over the last refresh (every 5 s) while this page is open."),
      table(["verdict", "since start", "per second"], ["allow", "screen", "reject"].map((v) =>
        el("tr", {}, el("td", {}, tag(v, v)), el("td", { class: "num" }, d.by[v] || 0), el("td", { class: "num", "data-rate": v }, rate(v))))),
      el("h3", {}, "Refusals and screens by reason, since start"),
      table(["reason", "count"], Object.entries(d.reasons).sort((a, b) => b[1] - a[1]).map(([k, n]) =>
        el("tr", {}, el("td", {}, k), el("td", { class: "num" }, n))), "none yet"));
  };
  await refreshDecisions();
  if (view.current()) S.timer = setInterval(() => refreshDecisions().catch(() => {}), 5000);

  const ls = (await api("GET", "/v1/locks")).locks || [];
  locks.append(el("h2", {}, "Locked accounts (" + ls.length + ")"),
    table(["account", "since", "by", "reason"], ls.map((l) => el("tr", {},
      el("td", {}, el("a", { href: "#/account/" + enc(l.account) }, l.account + (l.subaccount ? " / " + l.subaccount : ""))),
      el("td", {}, when(l.time)), el("td", {}, l.automatic ? "tollgate (automatic)" : l.by), el("td", {}, l.reason || "—"))), "no account is locked"));
  const as = (await api("GET", "/v1/alerts?limit=15")).alerts || [];
  alerts.append(el("h2", {}, "Recent alerts"),
    table(["time", "level", "account", "message"], as.map((a) => el("tr", {},
      el("td", {}, when(a.time)), el("td", {}, tag(a.level, a.level)),
      el("td", {}, a.account ? el("a", { href: "#/account/" + enc(a.account) }, a.account) : "—"), el("td", {}, a.message))), "no alerts"));

  stats.append(el("h2", {}, "Top rejected countries, prefixes and accounts"),
    el("p", { class: "muted" }, "From GET /v1/stats?window=1h and ?window=24h."));
  for (const w of ["1h", "24h"]) {
    const r = await fetch("/v1/stats?window=" + w, { credentials: "same-origin" });
    if (!r.ok) {
      stats.classList.add("stats-pending");
      stats.append(el("p", { class: "muted", id: "stats-unavailable" },
        "GET /v1/stats?window=" + w + " answered HTTP " + r.status + " on this build, so there are no per-country or per-prefix figures to show. " +
        "This section fills in by itself once the admin API serves GET /v1/stats; the decision counts above are from /metrics."));
      break;
    }
    stats.append(el("h3", { class: "stats-window" }, "Last " + w), renderAny(await r.json()));
  }
}
// renderAny shows a JSON document of unknown shape: lists of objects as
// tables, objects as key/value rows.
function renderAny(v) {
  if (Array.isArray(v)) {
    if (v.length && typeof v[0] === "object" && v[0] !== null) {
      const keys = [...new Set(v.flatMap((o) => Object.keys(o)))];
      return table(keys, v.map((o) => el("tr", {}, keys.map((k) => el("td", {}, fmt(o[k]))))));
    }
    return el("span", {}, v.map(fmt).join(", ") || "—");
  }
  if (v && typeof v === "object") {
    return el("table", { class: "kv" }, el("tbody", {}, Object.entries(v).map(([k, x]) =>
      el("tr", {}, el("td", {}, k), el("td", {}, typeof x === "object" && x !== null ? renderAny(x) : fmt(x))))));
  }
  return el("span", {}, fmt(v));
}

// ---- accounts ----
const PAGE = 50;
function summaryCountries(c) {
  if (!c) return "inherited";
  return (c.default === "deny" ? "deny all except " : "allow all except ") + ((c.except || []).join(", ") || "none");
}
async function accounts(view, args) {
  const q = new URLSearchParams(args[0] || "");
  const search = q.get("q") || "", filter = q.get("filter") || "all", after = q.get("after") || "";
  const prev = q.get("prev") ? q.get("prev").split(",") : [];
  const locks = (await api("GET", "/v1/locks")).locks || [];
  const locked = new Set(locks.filter((l) => !l.subaccount).map((l) => l.account));
  const go = (p) => { location.hash = "#/accounts/" + new URLSearchParams(p).toString(); };
  const form = el("form", { class: "inline", id: "account-search", onsubmit: (e) => {
    e.preventDefault(); go({ q: $("#q").value.trim(), filter: $("#filter").value });
  } },
  el("label", {}, "Name starts with", el("input", { id: "q", value: search, placeholder: "acme" })),
  el("label", {}, "Show", el("select", { id: "filter" },
    [["all", "all"], ["locked", "locked"], ["alerting", "alerting (warning or critical among the last 200 alerts)"]].map(([f, t]) =>
      el("option", { value: f, selected: f === filter }, t)))),
  el("button", { type: "submit" }, "Search"));
  const create = el("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    const n = $("#new-account").value.trim();
    if (!validName(n)) { flash("Not an account name: 1-64 letters, digits and ._-@+: (not . or ..).", false); return; }
    if (await write("Create account " + n, () => api("PUT", "/v1/accounts/" + enc(n), {}))) location.hash = "#/account/" + enc(n);
  } }, el("label", {}, "New account", el("input", { id: "new-account", required: true, placeholder: "name" })),
  el("button", { type: "submit" }, "Create"));
  view.replaceChildren(el("h1", {}, "Accounts"), el("div", { class: "card" }, form, create));

  const row = (a, extra) => el("tr", { "data-account": a.name },
    el("td", {}, el("a", { href: "#/account/" + enc(a.name) }, a.name)),
    el("td", {}, a.home_country || "—"), el("td", {}, summaryCountries(a.countries)),
    el("td", {}, a.high_risk || "inherited"),
    el("td", { class: "num" }, a.max_channels || "—"), el("td", { class: "num" }, a.max_cps || "—"),
    el("td", { class: "num" }, Object.keys(a.subaccounts || {}).length),
    el("td", {}, locked.has(a.name) ? tag("locked", "locked") : tag("ok", "open"), extra || ""));
  const heads = ["account", "home", "countries", "high-risk", "channels", "cps", "subaccounts", "status"];
  const card = el("div", { class: "card", id: "account-list" });
  view.append(card);

  if (filter === "locked" || filter === "alerting") {
    // Both sets are bounded (the locks in force, the last 200 alerts), so
    // they are listed whole rather than paged.
    let names;
    const note = {};
    if (filter === "locked") {
      names = [...locked];
      for (const l of locks) if (l.subaccount) { names.push(l.account); note[l.account] = "subaccount " + l.subaccount + " locked"; }
    } else {
      const al = (await api("GET", "/v1/alerts?limit=200")).alerts || [];
      names = [];
      for (const a of al) {
        if (!a.account || (a.level !== "warning" && a.level !== "critical")) continue;
        if (!note[a.account]) { names.push(a.account); note[a.account] = a.level + " " + a.kind + " " + when(a.time); }
      }
    }
    names = [...new Set(names)].filter((n) => n.startsWith(search)).sort();
    const rows = [];
    for (const n of names) {
      try { rows.push(row(await api("GET", "/v1/accounts/" + enc(n)), el("div", { class: "muted" }, note[n] || ""))); }
      catch (_) { rows.push(el("tr", {}, el("td", {}, n), el("td", { colspan: 7, class: "muted" }, "not an account (an unknown account served by default)"))); }
    }
    card.append(el("p", { class: "muted" }, names.length + " " + filter + " account(s)"), table(heads, rows, "none"));
    return;
  }
  // Paging through the list API: names sorted, "after" the cursor. A name
  // search starts just below the prefix ("~" sorts after every character a
  // name may hold) and stops at the first name without it.
  let start = after;
  if (!start && search) start = search.slice(0, -1) + String.fromCharCode(search.charCodeAt(search.length - 1) - 1) + "~";
  // One more than a page is asked for: whether it exists (and has the
  // prefix) says whether there is a next page.
  const r = await api("GET", "/v1/accounts?limit=" + (PAGE + 1) + (start ? "&after=" + enc(start) : ""));
  const list = r.accounts.filter((a) => a.name.startsWith(search));
  const more = list.length > PAGE;
  const shown = list.slice(0, PAGE);
  card.append(el("p", { class: "muted", id: "account-count" }, r.total + " accounts in all" + (search ? "; names starting with \"" + search + "\":" : "")),
    table(heads, shown.map((a) => row(a)), "no account matches"));
  const pager = el("div", { class: "pager" });
  if (after) pager.append(el("button", { type: "button", id: "prev-page", onclick: () => {
    const p = prev.slice(0, -1); go({ q: search, filter, after: prev[prev.length - 1] || "", prev: p.join(",") });
  } }, "← Previous"));
  if (more) pager.append(el("button", { type: "button", id: "next-page", onclick: () =>
    go({ q: search, filter, after: shown[shown.length - 1].name, prev: [...prev, after].join(",") }) }, "Next →"));
  card.append(pager);
}

// ---- account ----
function covers(sel, c) {
  if (sel === c.code) return true;
  if (sel.startsWith("continent:")) return c.continent === sel.slice(10);
  if (sel.startsWith("region:")) return c.region === sel.slice(7);
  if (sel === "nanp") return c.calling_code === 1;
  return false;
}
const CONTINENTS = { AF: "Africa", AN: "Antarctica", AS: "Asia", EU: "Europe", NA: "North America", OC: "Oceania", SA: "South America", "": "International networks" };

// encodeCountries writes the allowed set as {default, except}: selectors of
// the old list that still describe the change are kept, the rest spelled
// out as codes.
function encodeCountries(def, allowed, cs, oldExcept) {
  const differ = new Set(cs.filter((c) => allowed[c.code] !== (def === "allow")).map((c) => c.code));
  const except = [];
  for (const sel of oldExcept || []) {
    if (sel.length === 2 || sel === "001") continue;
    const cov = cs.filter((c) => covers(sel, c)).map((c) => c.code);
    if (cov.length && cov.every((c) => differ.has(c))) { except.push(sel); cov.forEach((c) => differ.delete(c)); }
  }
  return { default: def, except: except.concat([...differ].sort()) };
}

// validName is the admin API's rule for account and subaccount names: a
// name from a link is checked before it goes into a path (the server
// decodes %2F, so "a/../../x" would name another route).
const validName = (n) => /^[A-Za-z0-9._@+:-]{1,64}$/.test(n) && n !== "." && n !== "..";

async function account(view, args) {
  let name;
  try { name = decodeURIComponent(args[0] || ""); } catch (_) { name = ""; }
  if (!validName(name)) {
    view.replaceChildren(el("p", { class: "error" }, "Not an account name: 1-64 letters, digits and ._-@+: (not . or ..)."));
    return;
  }
  const [a, cs, op] = await Promise.all([api("GET", "/v1/accounts/" + enc(name)), countries(), api("GET", "/v1/operator")]);
  const opDisabled = op.disabled_countries || {};
  view.replaceChildren(el("h1", {}, "Account ", el("code", {}, name)));

  // Lock.
  const lockCard = el("div", { class: "card", id: "lock" });
  const showLock = async () => {
    const l = await api("GET", "/v1/accounts/" + enc(name) + "/lock");
    const reason = el("input", { id: "lock-reason", placeholder: "reason (ticket, what happened)", size: 40 });
    lockCard.replaceChildren(el("h2", {}, "International calls"),
      l.locked ? el("p", { id: "lock-state" }, tag("locked", "locked"), " since " + when(l.lock.time) + " by " + l.lock.by + (l.lock.reason ? ": " + l.lock.reason : ""))
        : el("p", { id: "lock-state" }, tag("ok", "open")),
      el("form", { class: "inline", onsubmit: async (e) => {
        e.preventDefault();
        const body = reason.value ? { reason: reason.value } : undefined;
        if (l.locked) await write("Unlock " + name, () => api("DELETE", "/v1/accounts/" + enc(name) + "/lock", body));
        else await write("Lock " + name, () => api("PUT", "/v1/accounts/" + enc(name) + "/lock", body));
        await showLock();
      } }, reason, el("button", { type: "submit", id: l.locked ? "unlock" : "lock-button", class: l.locked ? "primary" : "danger" }, l.locked ? "Unlock" : "Lock international calls")));
  };
  view.append(lockCard);
  await showLock();

  // Country grid.
  const inherited = !a.countries;
  const base = a.countries || (op.default && op.default.countries) || { default: "allow", except: [] };
  let def = base.default || "allow";
  const stored = {};
  for (const c of cs) stored[c.code] = (base.except || []).some((s) => covers(s, c)) ? def !== "allow" : def === "allow";
  const want = Object.assign({}, stored);
  const gridCard = el("div", { class: "card", id: "countries" });
  const pending = el("span", { class: "pending", id: "pending" });
  const drawGrid = () => {
    let n = 0;
    for (const c of cs) if (want[c.code] !== stored[c.code]) n++;
    pending.textContent = n ? n + " unsaved change" + (n > 1 ? "s" : "") : "";
    for (const b of gridCard.querySelectorAll(".cc")) {
      const cc = b.dataset.cc;
      b.classList.toggle("allow", want[cc]); b.classList.toggle("deny", !want[cc]);
      b.classList.toggle("changed", want[cc] !== stored[cc]);
      b.setAttribute("aria-pressed", want[cc] ? "true" : "false");
    }
  };
  const setAll = (list, v) => { for (const c of list) want[c.code] = v; drawGrid(); };
  const groups = {};
  for (const c of cs) ((groups[c.continent] = groups[c.continent] || {})[c.region] = groups[c.continent][c.region] || []).push(c);
  const body = el("div", {});
  for (const cont of Object.keys(CONTINENTS)) {
    if (!groups[cont]) continue;
    const all = Object.values(groups[cont]).flat();
    const sec = el("div", { class: "continent", "data-continent": cont },
      el("h3", {}, CONTINENTS[cont],
        el("button", { type: "button", class: "allow-all", onclick: () => setAll(all, true) }, "allow all"),
        el("button", { type: "button", class: "deny-all", onclick: () => setAll(all, false) }, "deny all")));
    for (const [region, list] of Object.entries(groups[cont]).sort()) {
      sec.append(el("div", { class: "region", "data-region": region },
        el("h4", {}, region.replace(/-/g, " "),
          el("button", { type: "button", onclick: () => setAll(list, true) }, "allow all"),
          el("button", { type: "button", onclick: () => setAll(list, false) }, "deny all")),
        el("div", { class: "cells" }, list.sort((x, y) => x.name.localeCompare(y.name)).map((c) =>
          el("button", { type: "button", class: "cc", "data-cc": c.code, title: c.name + " (+" + c.calling_code + ")" + (opDisabled[c.code] ? ": disabled by the operator for every account" : ""),
            onclick: () => { want[c.code] = !want[c.code]; drawGrid(); } },
          c.code + " " + c.name, opDisabled[c.code] ? el("span", { class: "opdis" }, "disabled by operator") : "")))));
    }
    body.append(sec);
  }
  const defSel = el("select", { id: "countries-default", onchange: () => { def = defSel.value; } },
    el("option", { value: "allow", selected: def === "allow" }, "allow every country except those denied"),
    el("option", { value: "deny", selected: def === "deny" }, "deny every country except those allowed"));
  gridCard.append(el("h2", {}, "Destination countries"),
    el("p", { class: "muted" }, inherited ? "This account has no country rules of its own: it inherits the operator default shown here. Saving gives it its own." :
      "Stored: " + summaryCountries(a.countries) + ". Click a country to switch it; nothing changes until you save."),
    el("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      const cur = await api("GET", "/v1/accounts/" + enc(name));
      delete cur.name; delete cur.subaccounts;
      cur.countries = encodeCountries(def, want, cs, base.except);
      if (await write("Save countries of " + name, () => api("PUT", "/v1/accounts/" + enc(name), cur))) route();
    } }, el("label", {}, "Stored as", defSel), el("button", { type: "submit", class: "primary", id: "save-countries" }, "Save countries"), pending),
    body);
  view.append(gridCard);
  drawGrid();

  // Settings.
  const setCard = el("div", { class: "card", id: "settings" });
  const fields = [["home_country", "home country (ISO code)", "text"], ["max_channels", "max channels", "number"], ["max_cps", "max calls per second", "number"],
    ["account_max_channels", "account-wide max channels", "number"], ["account_max_cps", "account-wide max cps", "number"],
    ["max_destination_rate", "max destination rate", "number"], ["time_zone", "time zone", "text"]];
  const inputs = {};
  const sel = (id, cur, opts) => el("select", { id }, opts.map(([v, t]) => el("option", { value: v, selected: (cur || "") === v }, t)));
  const hr = sel("high_risk", a.high_risk, [["", "inherit"], ["block", "block the high-risk list"], ["allow", "allow the high-risk list"]]);
  const us = sel("unknown_subaccounts", a.unknown_subaccounts, [["", "default (account's policy)"], ["account", "account's policy"], ["reject", "reject"]]);
  setCard.append(el("h2", {}, "High-risk and caps"),
    el("form", { id: "settings-form", onsubmit: async (e) => {
      e.preventDefault();
      const cur = await api("GET", "/v1/accounts/" + enc(name));
      delete cur.name; delete cur.subaccounts;
      for (const [k, , type] of fields) {
        const v = inputs[k].value.trim();
        if (v === "") delete cur[k]; else cur[k] = type === "number" ? Number(v) : v;
      }
      if (hr.value) cur.high_risk = hr.value; else delete cur.high_risk;
      if (us.value) cur.unknown_subaccounts = us.value; else delete cur.unknown_subaccounts;
      if (await write("Save settings of " + name, () => api("PUT", "/v1/accounts/" + enc(name), cur))) route();
    } }, el("table", { class: "kv" }, el("tbody", {},
      el("tr", {}, el("td", {}, "high-risk list"), el("td", {}, hr)),
      fields.map(([k, label, type]) => el("tr", {}, el("td", {}, label),
        el("td", {}, inputs[k] = el("input", { id: k, type, step: "any", min: type === "number" ? "0" : null, value: a[k] === undefined ? "" : a[k], placeholder: "inherit / none" })))),
      el("tr", {}, el("td", {}, "unknown subaccounts"), el("td", {}, us)))),
    el("button", { type: "submit", class: "primary" }, "Save")));

  // Velocity beside its counters, and origin.
  const velCard = el("div", { class: "card", id: "velocity" });
  const origCard = el("div", { class: "card", id: "origin" });
  view.append(el("div", { class: "grid2" }, setCard, velCard), origCard);
  let vel = null;
  try {
    const v = vel = await api("GET", "/v1/accounts/" + enc(name) + "/velocity");
    const rows = [];
    for (const r of v.rules || []) {
      for (const [m, x] of Object.entries(r.measures || {})) {
        rows.push(el("tr", {}, el("td", {}, r.name + (r.prefix ? " (" + r.prefix + ")" : "") + (r.active ? "" : " (inactive now)")), el("td", {}, m),
          el("td", { class: "num" }, x.value), el("td", { class: "num" }, fmt(x.warning)), el("td", { class: "num" }, fmt(x.critical)), el("td", {}, tag(x.level === "ok" ? "ok" : x.level, x.level))));
      }
    }
    const sp = v.spend || {};
    velCard.append(el("h2", {}, "Velocity: levels and live counters"),
      kv({ "live calls": v.live_calls, "peak today / typical peak": v.peak_today + " / " + v.typical_peak,
        "spend today": sp.spent !== undefined ? sp.spent + " " + (sp.currency || "") + (sp.limit ? " of " + sp.limit : "") : "—",
        "spend level": sp.level ? tag(sp.level === "ok" ? "ok" : sp.level, sp.level) : "—",
        "unconfirmed calls": v.unconfirmed_calls }),
      table(["rule", "measure", "now", "warning", "critical", "level"], rows, "no velocity rules"),
      el("button", { type: "button", onclick: async () => {
        if (await write("Reset counters of " + name, () => api("DELETE", "/v1/accounts/" + enc(name) + "/velocity"))) route();
      } }, "Reset counters"));
  } catch (e) { velCard.append(el("h2", {}, "Velocity"), el("p", { class: "muted" }, e.message)); }
  try {
    const o = await api("GET", "/v1/accounts/" + enc(name) + "/origin");
    origCard.append(el("h2", {}, "Origin state"), kv(o.origin || {}),
      (o.origin && o.origin.quarantined) ? el("button", { type: "button", onclick: async () => {
        if (await write("Lift quarantine of " + name, () => api("DELETE", "/v1/accounts/" + enc(name) + "/quarantine"))) route();
      } }, "Lift quarantine") : "");
  } catch (e) { origCard.append(el("h2", {}, "Origin state"), el("p", { class: "muted" }, e.message)); }

  // Everything else (prefixes, velocity rules, origin settings): the
  // account's policy as the API takes it.
  const doc = Object.assign({}, a);
  delete doc.name; delete doc.subaccounts;
  const ta = el("textarea", { id: "account-json", spellcheck: "false" }, JSON.stringify(doc, null, 2));
  view.append(el("div", { class: "card", id: "policy-json" }, el("h2", {}, "Policy as JSON"),
    el("p", { class: "muted" }, "Allow and block prefixes, velocity rules, origin settings and the rest, as PUT /v1/accounts/" + name +
      " takes them (subaccounts are kept). A mistake is refused naming the field, and nothing is changed."),
    el("form", { onsubmit: async (e) => {
      e.preventDefault();
      let body;
      try { body = JSON.parse(ta.value); } catch (err) { flash("Not JSON: " + err.message, false); return; }
      if (await write("Save policy of " + name, () => api("PUT", "/v1/accounts/" + enc(name), body))) route();
    } }, ta, el("button", { type: "submit", class: "primary", id: "save-json" }, "Save policy"))));

  // Subaccounts with their overrides.
  const subCard = el("div", { class: "card", id: "subaccounts" });
  const subs = a.subaccounts || {};
  subCard.append(el("h2", {}, "Subaccounts (" + Object.keys(subs).length + ")"),
    el("p", { class: "muted" }, "Each field below overrides the account's; \"remove override\" lets the subaccount inherit it again."));
  for (const [sub, p] of Object.entries(subs).sort()) {
    const path = "/v1/accounts/" + enc(name) + "/subaccounts/" + enc(sub);
    const sv = vel && (vel.subaccounts || []).find((x) => x.subaccount === sub);
    const lk = sv && sv.lock;
    const why = el("input", { class: "sub-reason", placeholder: "reason", size: 24 });
    subCard.append(el("h3", { "data-sub": sub }, sub, " ", lk ? tag("locked", "locked") : tag("ok", "open"), " ",
      el("button", { type: "button", class: "danger", onclick: async () => {
        if (confirm("Delete subaccount " + sub + "?") && await write("Delete subaccount " + sub, () => api("DELETE", path))) route();
      } }, "delete subaccount")),
    el("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      const body = why.value ? { reason: why.value } : undefined;
      if (await write((lk ? "Unlock " : "Lock ") + name + "/" + sub, () => api(lk ? "DELETE" : "PUT", path + "/lock", body))) route();
    } }, lk ? el("span", { class: "muted" }, "locked " + when(lk.time) + " by " + lk.by + (lk.reason ? ": " + lk.reason : "")) : "", why,
    el("button", { type: "submit", class: "sub-lock" }, lk ? "Unlock subaccount" : "Lock subaccount")),
    table(["field", "override", ""], Object.entries(p).map(([k, v]) => el("tr", { "data-field": k },
      el("td", {}, k), el("td", {}, el("code", {}, fmt(v))), el("td", {}, el("button", { type: "button", class: "remove-override", onclick: async () => {
        const cur = await api("GET", path);
        delete cur.account; delete cur.subaccount; delete cur[k];
        if (await write("Remove override " + k + " of " + sub, () => api("PUT", path, cur))) route();
      } }, "remove override")))), "no overrides: inherits everything"));
  }
  subCard.append(el("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    const n = $("#new-sub").value.trim();
    if (!validName(n)) { flash("Not a subaccount name: 1-64 letters, digits and ._-@+: (not . or ..).", false); return; }
    if (await write("Create subaccount " + n, () => api("PUT", "/v1/accounts/" + enc(name) + "/subaccounts/" + enc(n), {}))) route();
  } }, el("label", {}, "New subaccount", el("input", { id: "new-sub", required: true })), el("button", { type: "submit" }, "Add")));
  view.append(subCard);
}

// ---- operator ----
async function operator(view) {
  const [op, rec, cs] = await Promise.all([api("GET", "/v1/operator"), api("GET", "/v1/recommended-denies"), countries()]);
  const cname = Object.fromEntries(cs.map((c) => [c.code, c.name]));
  view.replaceChildren(el("h1", {}, "Operator settings"));
  const dis = Object.entries(op.disabled_countries || {}).sort();
  view.append(el("div", { class: "grid2" },
    el("div", { class: "card", id: "disabled-countries" }, el("h2", {}, "Disabled countries (" + dis.length + ")"),
      el("p", { class: "muted" }, "Refused country_disabled for every account, whatever its own rules."),
      table(["country", "reason", ""], dis.map(([cc, d]) => el("tr", {}, el("td", {}, cc + " " + (cname[cc] || "")), el("td", {}, d.reason || "—"),
        el("td", {}, el("button", { type: "button", onclick: async () => {
          if (await write("Enable " + cc, () => api("DELETE", "/v1/operator/countries/" + enc(cc)))) { S.countries = null; route(); }
        } }, "enable")))), "none"),
      el("form", { class: "inline", onsubmit: async (e) => {
        e.preventDefault();
        const cc = $("#dis-cc").value.trim(), reason = $("#dis-reason").value;
        if (await write("Disable " + cc, () => api("PUT", "/v1/operator/countries/" + enc(cc), reason ? { reason } : undefined))) { S.countries = null; route(); }
      } }, el("input", { id: "dis-cc", placeholder: "CC", size: 4, required: true }), el("input", { id: "dis-reason", placeholder: "reason" }), el("button", { type: "submit" }, "Disable country"))),
    el("div", { class: "card", id: "blocked-prefixes" }, el("h2", {}, "Blocked prefixes (" + (op.blocked_prefixes || []).length + ")"),
      el("p", { class: "muted" }, "Refused number_barred for every account, whatever its allow prefixes."),
      table(["prefix", "reason", ""], (op.blocked_prefixes || []).map((b) => el("tr", {}, el("td", {}, b.prefix), el("td", {}, b.reason || "—"),
        el("td", {}, el("button", { type: "button", onclick: async () => {
          if (await write("Unblock " + b.prefix, () => api("DELETE", "/v1/operator/prefixes/" + enc(b.prefix)))) route();
        } }, "unblock")))), "none"),
      el("form", { class: "inline", onsubmit: async (e) => {
        e.preventDefault();
        const p = $("#blk-prefix").value.trim(), reason = $("#blk-reason").value;
        if (await write("Block " + p, () => api("PUT", "/v1/operator/prefixes/" + enc(p), reason ? { reason } : undefined))) route();
      } }, el("input", { id: "blk-prefix", placeholder: "+882", size: 10, required: true }), el("input", { id: "blk-reason", placeholder: "reason" }), el("button", { type: "submit" }, "Block prefix")))));

  view.append(el("div", { class: "card", id: "recommended" }, el("h2", {}, "Recommended country denies"),
    el("p", { class: "muted" }, "Version " + rec.version + (rec.applied ? " — all applied." : " — not all applied.")),
    el("div", { class: "inline" },
      el("button", { type: "button", class: "primary", disabled: rec.applied, onclick: async () => {
        if (await write("Apply recommended denies", () => api("PUT", "/v1/operator/recommended-denies"))) { S.countries = null; route(); }
      } }, "Apply all"), " ",
      el("button", { type: "button", onclick: async () => {
        if (await write("Remove recommended denies", () => api("DELETE", "/v1/operator/recommended-denies"))) { S.countries = null; route(); }
      } }, "Remove the ones applied")),
    table(["country", "prefixes", "sources", "status"], (rec.countries || []).map((c) => el("tr", {},
      el("td", {}, c.country + " " + c.name), el("td", {}, (c.prefixes || []).join(" ")), el("td", {}, (c.sources || []).join("; ")),
      el("td", {}, c.disabled ? tag("bad", "disabled") : tag("ok", "enabled")))))));

  const ta = el("textarea", { id: "default-policy", spellcheck: "false" }, JSON.stringify(op.default || {}, null, 2));
  view.append(el("div", { class: "card", id: "defaults" }, el("h2", {}, "Defaults"),
    kv({ "unknown accounts": op.unknown_accounts || "default", "geo profiles": Object.keys(op.geo_profiles || {}).join(", ") || "none",
      "range velocity": op.range_velocity ? "on" : "off" }),
    el("h3", {}, "Default policy (what unknown accounts get and every account inherits)"),
    el("form", { onsubmit: async (e) => {
      e.preventDefault();
      let d;
      try { d = JSON.parse(ta.value); } catch (err) { flash("The default policy is not JSON: " + err.message, false); return; }
      const cur = await api("GET", "/v1/operator");
      cur.default = d;
      if (await write("Save default policy", () => api("PUT", "/v1/operator", cur))) route();
    } }, ta, el("button", { type: "submit", class: "primary" }, "Save default policy"))));
}

// ---- high-risk list ----
// csvLine splits one RFC 4180 line: fields in double quotes may hold
// commas, and "" is a quote.
function csvLine(line) {
  const out = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let v = "";
      i++;
      while (i < line.length) {
        if (line[i] === '"' && line[i + 1] === '"') { v += '"'; i += 2; }
        else if (line[i] === '"') { i++; break; }
        else v += line[i++];
      }
      out.push(v);
      i = line.indexOf(",", i) + 1 || line.length + 1;
    } else {
      let j = line.indexOf(",", i);
      if (j < 0) j = line.length;
      out.push(line.slice(i, j));
      i = j + 1;
    }
  }
  return out;
}
async function highRisk(view, args) {
  const r = await api("GET", "/v1/high-risk", undefined, true);
  if (!r.ok) throw new APIError(r.status, null);
  const text = await r.text();
  const entries = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#") || line.startsWith("prefix,")) continue;
    const [prefix, country, category, source] = csvLine(line);
    entries.push({ prefix, country, category, source: source || "" });
  }
  const sources = {};
  for (const e of entries) { const k = e.source.split(" ").slice(0, 2).join(" "); sources[k] = (sources[k] || 0) + 1; }
  const out = el("div", { id: "hr-results" });
  // the page is drawn off the document (see route): no $() before it is shown
  const qIn = el("input", { id: "hr-q", placeholder: "+881 or CU", value: new URLSearchParams(args[0] || "").get("q") || "" });
  const search = () => {
    const q = qIn.value.trim().toUpperCase().replace(/^00/, "+");
    let m = entries;
    if (/^[A-Z]{2}$/.test(q)) m = entries.filter((e) => e.country === q);
    else if (q) {
      const p = q.startsWith("+") ? q : "+" + q;
      m = entries.filter((e) => e.prefix.startsWith(p) || p.startsWith(e.prefix));
    }
    out.replaceChildren(el("p", { class: "muted" }, m.length + " entr" + (m.length === 1 ? "y" : "ies") + (m.length > 200 ? ", the first 200 shown" : "")),
      table(["prefix", "country", "category", "source"], m.slice(0, 200).map((e) =>
        el("tr", {}, el("td", {}, e.prefix), el("td", {}, e.country), el("td", {}, e.category), el("td", {}, e.source))), "no entry matches"));
  };
  view.replaceChildren(el("h1", {}, "High-risk list"),
    el("div", { class: "card" }, kv({ origin: r.headers.get("X-Tollgate-High-Risk-Origin"), version: r.headers.get("X-Tollgate-High-Risk-Version"),
      entries: r.headers.get("X-Tollgate-High-Risk-Entries") }),
    el("p", {}, el("a", { href: "/v1/high-risk", download: "high-risk.csv", id: "hr-export" }, "Export the list in force (CSV)"),
      el("span", { class: "muted" }, " — the format PUT /v1/high-risk takes back.")),
    el("h3", {}, "Sources"), table(["source (its first two words)", "entries"], Object.entries(sources).sort((a, b) => b[1] - a[1]).map(([k, n]) =>
      el("tr", {}, el("td", {}, k), el("td", { class: "num" }, n))))),
    el("div", { class: "card" }, el("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); search(); } },
      el("label", {}, "Prefix, number or country code", qIn), el("button", { type: "submit" }, "Search")), out));
  search();
}

// ---- try a call ----
async function tryCall(view, args) {
  const q = new URLSearchParams(args[0] || "");
  const out = el("div", { id: "try-result" });
  const f = (id, label, ph) => el("label", {}, label, el("input", { id, value: q.get(id) || "", placeholder: ph }));
  view.replaceChildren(el("h1", {}, "Try a call"),
    el("div", { class: "card" }, el("p", { class: "muted" }, "Asks GET /v1/check, the query the proxies make, on the policy in force. It is a real check: it counts in the account's velocity counters and in the metrics, as `tollgate check` does."),
      el("form", { class: "inline", id: "try-form", onsubmit: async (e) => {
        e.preventDefault();
        const p = new URLSearchParams();
        for (const k of ["account", "subaccount", "to", "src_ip"]) { const v = $("#" + k).value.trim(); if (v) p.set(k, v); }
        const v = await api("GET", "/v1/check?" + p.toString());
        if (v.error) { out.replaceChildren(el("p", { class: "error" }, v.error)); return; }
        out.replaceChildren(el("p", { class: "verdict" }, tag(v.verdict, v.verdict), " ", v.reason, " (" + v.code + ", SIP " + v.sip_code + " " + v.sip_reason + ")"),
          el("p", {}, "Rule: ", el("code", { id: "try-rule" }, v.rule)), kv(v));
      } }, f("account", "Account", "acme"), f("subaccount", "Subaccount", ""), f("to", "Number", "+5355512345"), f("src_ip", "Source IP", "192.0.2.1"),
      el("button", { type: "submit", class: "primary" }, "Check"))),
    el("div", { class: "card" }, out));
}

// ---- audit log ----
async function audit(view, args) {
  const before = args[0] || "";
  const r = await api("GET", "/v1/audit?limit=25" + (before ? "&before=" + enc(before) : ""));
  view.replaceChildren(el("h1", {}, "Audit log"), el("div", { class: "card", id: "audit-list" },
    table(["id", "time", "who", "from", "action", "object", "change"], (r.entries || []).map((e) => el("tr", {},
      el("td", { class: "num" }, e.id), el("td", {}, when(e.time)), el("td", {}, e.who), el("td", {}, e.remote), el("td", {}, e.action), el("td", {}, e.object),
      el("td", {}, el("details", {}, el("summary", {}, "before / after"), el("pre", {}, "before: " + JSON.stringify(e.before, null, 1)), el("pre", {}, "after: " + JSON.stringify(e.after, null, 1)))))), "no changes yet"),
    el("div", { class: "pager" }, before ? el("a", { href: "#/audit" }, "newest") : "", r.next ? el("a", { href: "#/audit/" + r.next, id: "audit-next" }, "older →") : "")));
}

// ---- start ----
window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", async () => {
  $("#signin-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", signOut);
  const r = await fetch("/console/session", { credentials: "same-origin" });
  if (r.ok) signedIn(await r.json()); else showSignIn("");
});
