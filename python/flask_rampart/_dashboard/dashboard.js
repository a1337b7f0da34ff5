// Rampart dashboard: polls <base>/api/state and draws it. Every value from the server is put
// on the page with textContent (events carry what clients sent), never as HTML.
"use strict";

(function () {
  const base = document.querySelector('meta[name="rampart-base"]').content;
  const csrf = document.querySelector('meta[name="rampart-csrf"]').content;
  const SVG = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 2000;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function fillRows(tableId, emptyId, rows) {
    const body = byId(tableId).tBodies[0];
    body.replaceChildren(...rows);
    byId(emptyId).hidden = rows.length > 0;
    byId(tableId).hidden = rows.length === 0;
  }

  function facts(id, pairs) {
    const list = byId(id);
    const nodes = [];
    for (const [name, value] of pairs) {
      nodes.push(el("dt", name));
      nodes.push(el("dd", value));
    }
    list.replaceChildren(...nodes);
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s >= 86400) return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
    if (s >= 3600) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    if (s >= 60) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    return s + "s";
  }

  function clock(epoch) {
    return new Date(epoch * 1000).toLocaleTimeString();
  }

  function sum(values) {
    return Object.values(values || {}).reduce((a, b) => a + b, 0);
  }

  function drawHeader(state) {
    byId("version").textContent = "v" + state.stats.version;
    const mode = byId("mode");
    mode.textContent = state.passive_mode ? "passive mode" : "enforcing";
    mode.className = "badge " + (state.passive_mode ? "warn" : "ok");
    const store = byId("store-badge");
    store.textContent = state.store.backend + (state.store.healthy ? " ok" : " degraded");
    store.className = "badge " + (state.store.healthy ? "ok" : "bad");
    byId("updated").textContent = "updated " + clock(state.now);
    byId("t-requests").textContent = state.stats.requests;
    byId("t-blocked").textContent = state.stats.blocked_total;
    byId("t-detections").textContent = sum(state.stats.detections);
    byId("t-bans").textContent = state.bans.length;
    const i = state.stats.inspection;
    byId("t-latency").textContent = i.calls ? i.p50_us.toFixed(1) + " / " + i.p99_us.toFixed(1) + " µs" : "–";
  }

  function drawEvents(state) {
    const rows = state.events.map((e) => {
      const tr = el("tr", null, "outcome-" + (e["event.outcome"] || ""));
      tr.append(
        el("td", clock(e["@timestamp"])),
        el("td", e["event.action"]),
        el("td", e["event.outcome"]),
        el("td", e["source.ip"] || "", "ip"),
        el("td", ((e["http.request.method"] || "") + " " + (e["url.path"] || "")).trim(), "mono"),
        el("td", [e["rule.id"] || ""].concat(e["rampart.categories"] || []).filter(Boolean).join(" · "), "mono"),
        el("td", (e["rampart.locations"] || []).join(", "), "mono"),
        el("td", e["http.response.status_code"] ?? ""),
        el("td", e.message || "", "why")
      );
      return tr;
    });
    fillRows("events", "events-empty", rows);
  }

  function drawBans(state) {
    const rows = state.bans.map((b) => {
      const tr = el("tr");
      const button = el("button", "Unban", "unban");
      button.type = "button";
      button.dataset.ip = b.ip;
      button.addEventListener("click", () => unban(b.ip, button));
      const action = el("td");
      action.append(button);
      tr.append(el("td", b.ip, "mono ip"), el("td", duration(b.remaining)), el("td", b.reason), action);
      return tr;
    });
    fillRows("bans", "bans-empty", rows);
  }

  function drawOffenders(state) {
    const rows = state.offenders.map((o) => {
      const tr = el("tr");
      tr.append(el("td", o.ip, "mono ip"), el("td", o.events), el("td", o.last_action));
      return tr;
    });
    fillRows("offenders", "offenders-empty", rows);
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function drawChart(state) {
    const chart = byId("chart");
    const { minutes, series } = state.chart;
    const names = Object.keys(series);
    const W = 600, H = 180, left = 30, bottom = 20, top = 8;
    const totals = minutes.map((_, i) => names.reduce((a, n) => a + series[n][i], 0));
    const peak = Math.max(1, ...totals);
    const slot = (W - left) / minutes.length;
    const nodes = [
      svg("line", { x1: left, y1: H - bottom, x2: W, y2: H - bottom, class: "axis" }),
      svg("text", { x: 2, y: top + 8, class: "tick" }, String(peak)),
      svg("text", { x: 2, y: H - bottom, class: "tick" }, "0"),
      svg("text", { x: left, y: H - 4, class: "tick" }, "-" + minutes.length + " min"),
      svg("text", { x: W - 30, y: H - 4, class: "tick" }, "now"),
    ];
    minutes.forEach((_, i) => {
      let y = H - bottom;
      names.forEach((name, k) => {
        const n = series[name][i];
        if (!n) return;
        const h = (n / peak) * (H - bottom - top);
        y -= h;
        const bar = svg("rect", { x: left + i * slot + 1, y: y, width: Math.max(1, slot - 2), height: h, class: "series-" + (k % 8) });
        bar.append(svg("title", {}, name + ": " + n));
        nodes.push(bar);
      });
    });
    chart.replaceChildren(...nodes);
    const legend = names.map((name, k) => {
      const item = el("li");
      item.append(el("span", "", "swatch series-" + (k % 8)), el("span", name + " (" + series[name].reduce((a, b) => a + b, 0) + ")"));
      return item;
    });
    if (legend.length === 0) legend.push(el("li", "No detections in the last " + minutes.length + " minutes.", "muted"));
    byId("legend").replaceChildren(...legend);
  }

  function drawLimits(state) {
    const l = state.limits;
    const pairs = [
      ["Rate limiting", l.enabled ? "on" : "off"],
      ["Global limit", l.rate_limit + " per " + l.window + " s (" + l.algorithm + ")"],
    ];
    l.rules.forEach((r, i) => pairs.push(["Limit " + (i + 1), Object.entries(r).map(([k, v]) => k + "=" + v).join(", ")]));
    Object.entries(l.endpoints).forEach(([path, v]) => pairs.push(["Path " + path, Array.isArray(v) ? v[0] + " per " + v[1] + " s" : String(v)]));
    pairs.push(["Requests limited", l.limited], ["Tracked keys", l.tracked_keys]);
    facts("limits", pairs);
    const blocked = Object.entries(state.stats.blocked);
    facts("blocked", blocked.length ? blocked : [["(none)", ""]]);
  }

  function drawStore(state) {
    const s = state.store;
    facts("store", [
      ["Backend", s.backend + (s.shared ? " (shared by every worker)" : " (this process only)")],
      ["Health", s.healthy ? "ok" : "degraded: " + s.problem],
      ["Round trips", state.stats.store.round_trips],
      ["Errors", state.stats.store.errors],
      ["Keys", s.keys],
    ]);
  }

  function draw(state) {
    drawHeader(state);
    drawEvents(state);
    drawBans(state);
    drawOffenders(state);
    drawChart(state);
    drawLimits(state);
    drawStore(state);
    document.body.dataset.loaded = "true";
  }

  async function refresh() {
    try {
      const response = await fetch(base + "/api/state", { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      draw(await response.json());
    } catch (error) {
      byId("updated").textContent = "update failed: " + error.message;
    }
  }

  async function unban(ip, button) {
    button.disabled = true;
    byId("unban-error").textContent = "";
    try {
      const response = await fetch(base + "/api/unban", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Rampart-CSRF": csrf },
        body: JSON.stringify({ ip: ip }),
      });
      if (!response.ok) throw new Error("HTTP " + response.status + ": " + (await response.text()));
    } catch (error) {
      byId("unban-error").textContent = "Could not unban " + ip + ": " + error.message;
      button.disabled = false;
    }
    await refresh();
  }

  function looksLikeIp(text) {
    if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) return text.split(".").every((part) => Number(part) <= 255);
    return text.includes(":") && /^[0-9a-fA-F:.]+$/.test(text);
  }

  async function lookup(event) {
    event.preventDefault();
    const ip = byId("lookup-ip").value.trim();
    const table = byId("client-limits");
    const message = byId("lookup-message");
    table.hidden = true;
    message.textContent = "";
    if (!ip) return;
    if (!looksLikeIp(ip)) {
      // Answered here: the server would refuse it (400) and the browser log an error.
      message.textContent = "not an IP address: " + ip;
      return;
    }
    try {
      const response = await fetch(base + "/api/limits?ip=" + encodeURIComponent(ip), { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error((await response.text()).trim() || "HTTP " + response.status);
      const answer = await response.json();
      const rows = answer.limits.map((l) => {
        const tr = el("tr");
        const name = l.endpoint ? l.name + " (" + l.endpoint + ")" : l.name;
        tr.append(el("td", name, "mono"), el("td", l.used + " / " + l.limit + " per " + l.window + " s"), el("td", l.remaining), el("td", l.used ? duration(l.reset) : "–"));
        return tr;
      });
      table.tBodies[0].replaceChildren(...rows);
      table.hidden = rows.length === 0;
      message.textContent = rows.length ? "" : "No rate limit applies to " + answer.ip + ".";
    } catch (error) {
      message.textContent = "Could not read the limits of " + ip + ": " + error.message;
    }
  }

  byId("lookup").addEventListener("submit", lookup);
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
