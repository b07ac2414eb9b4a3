// Live presence on the device list and the device page, and the device page's live messages
// with a chart of every numeric JSON field the device publishes (uPlot).
import uPlot from "uplot";
import { frameBatcher } from "./connection.js";
import { clock, preview, renderPayload } from "./payload.js";

const PRESENCE = "$roost/presence/";
const MESSAGES = 50;
const KEEP_SECONDS = 3600; // the widest time window one can pick
const MAX_SERIES = 24; // a device publishing hundreds of numbers gets its first 24 charted

// Elements with data-presence="DEVICE" flip between online and offline as the broker
// announces it (retained, so the current state arrives on subscribing). Rows that htmx swaps
// in later (the device list's filters and pages) get the latest state known.
export function startPresence(live) {
  const first = document.querySelectorAll("[data-presence]");
  if (!first.length) return;
  const known = new Map(); // device -> online
  const apply = (scope) => {
    for (const el of scope.querySelectorAll("[data-presence]")) {
      if (known.has(el.dataset.presence)) showPresence(el, known.get(el.dataset.presence));
    }
  };
  const single = first.length === 1 && !document.getElementById("device-table");
  const filters = [PRESENCE + (single ? first[0].dataset.presence : "+")];
  live.onMessage((topic, payload) => {
    if (!topic.startsWith(PRESENCE)) return;
    const device = topic.slice(PRESENCE.length);
    let online = false;
    try {
      online = JSON.parse(new TextDecoder().decode(payload)).online === true;
    } catch {
      return; // not a presence message the page understands: leave the state as it is
    }
    known.set(device, online);
    for (const el of document.querySelectorAll(`[data-presence="${CSS.escape(device)}"]`)) showPresence(el, online);
  });
  document.addEventListener("htmx:afterSettle", (event) => apply(event.target));
  live.subscribe(filters, (filter, granted) => {
    document.body.dataset.presence = granted ? "subscribed" : "refused";
  });
}

function showPresence(el, online) {
  el.dataset.online = String(online);
  if (el.dataset.disabled !== undefined) return; // a disabled device keeps saying so
  const badge = document.createElement("span");
  badge.className = `badge ${online ? "online" : "offline"}`;
  badge.textContent = online ? "online" : "offline";
  el.replaceChildren(badge);
}

// Numbers in a JSON value, by dotted path ("" for a bare number), three levels deep at most.
function numericFields(value, prefix = "", depth = 0, out = []) {
  if (typeof value === "number" && Number.isFinite(value)) out.push([prefix || "value", value]);
  else if (value && typeof value === "object" && !Array.isArray(value) && depth < 3) {
    for (const [key, inner] of Object.entries(value)) {
      numericFields(inner, prefix ? `${prefix}.${key}` : key, depth + 1, out);
    }
  }
  return out;
}

function timeLabel(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

export function startDevicePage(live, root) {
  const device = root.dataset.device;
  const base = `devices/${device}/`;
  const table = root.querySelector("#device-messages tbody");
  const chartsEl = root.querySelector("#device-charts");
  const pause = root.querySelector("#chart-pause");
  const windowSelect = root.querySelector("#chart-window");
  const empty = root.querySelector("#device-live-empty");
  const messages = [];
  const series = new Map(); // "subtopic field" -> {xs, ys, plot, el}
  let messagesDirty = false;

  const redraw = frameBatcher(() => {
    if (messagesDirty) {
      messagesDirty = false;
      const rows = messages.slice().reverse().map((m) => {
        const tr = document.createElement("tr");
        for (const text of [clock(new Date(m.time)), m.topic.slice(base.length), String(m.qos) + (m.retain ? " · retained" : ""),
          preview(m.payload, 160)]) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.append(td);
        }
        tr.title = renderPayload(m.payload).text;
        return tr;
      });
      table.replaceChildren(...rows);
      if (empty) empty.hidden = messages.length > 0;
    }
    if (!pause?.checked) drawCharts();
  });

  function drawCharts() {
    const now = Date.now() / 1000;
    const from = now - Number(windowSelect?.value || 300);
    for (const s of series.values()) {
      let start = 0;
      while (start < s.xs.length && s.xs[start] < from) start++;
      const xs = s.xs.slice(start);
      const ys = s.ys.slice(start);
      s.plot.batch(() => {
        s.plot.setData([xs, ys], false);
        s.plot.setScale("x", { min: from, max: now });
      });
      s.el.dataset.points = String(xs.length);
      s.el.querySelector(".chart-last").textContent = ys.length ? String(ys[ys.length - 1]) : "";
    }
  }

  function chartFor(key) {
    let s = series.get(key);
    if (s || series.size >= MAX_SERIES) return s;
    const el = document.createElement("figure");
    el.className = "device-chart";
    el.dataset.series = key;
    el.dataset.points = "0";
    el.innerHTML = `<figcaption><span class="chart-name"></span> <strong class="chart-last"></strong></figcaption>`;
    el.querySelector(".chart-name").textContent = key;
    chartsEl.append(el);
    const width = Math.max(200, el.clientWidth);
    const plot = new uPlot({
      width, height: 160, legend: { show: false }, cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      series: [{}, { label: key, stroke: "#1d6fd3", width: 2, points: { show: true, size: 4 } }],
      // Clock times only (the date is today's), spaced so that labels never run into each other.
      axes: [{ space: 80, values: (_, ticks) => ticks.map(timeLabel) }, { size: 56 }],
    }, [[], []], el);
    s = { xs: [], ys: [], plot, el };
    series.set(key, s);
    return s;
  }

  live.onMessage((topic, payload, packet) => {
    if (!topic.startsWith(base)) return;
    const time = Date.now();
    messages.push({ topic, payload, qos: packet.qos, retain: packet.retain, time });
    if (messages.length > MESSAGES) messages.shift();
    messagesDirty = true;
    const shown = renderPayload(payload);
    if (shown.kind === "json") {
      const sub = topic.slice(base.length);
      for (const [field, value] of numericFields(shown.value)) {
        const s = chartFor(`${sub} ${field}`);
        if (!s) continue;
        s.xs.push(time / 1000);
        s.ys.push(value);
        const old = time / 1000 - KEEP_SECONDS;
        while (s.xs.length && s.xs[0] < old) {
          s.xs.shift();
          s.ys.shift();
        }
      }
    }
    redraw();
  });
  live.subscribe([`${base}#`], (filter, granted, reason) => {
    root.dataset.subscribed = granted ? "true" : `refused: ${reason}`;
  });

  pause?.addEventListener("change", redraw);
  windowSelect?.addEventListener("change", redraw);
  // The time axis moves on even when nothing arrives.
  setInterval(() => { if (series.size) redraw(); }, 1000);
  new ResizeObserver(() => {
    for (const s of series.values()) s.plot.setSize({ width: Math.max(200, s.el.clientWidth), height: 160 });
  }).observe(chartsEl);
}
