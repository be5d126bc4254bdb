// tickstream dashboard: search, live candles with indicator overlays, RSI pane, tick table.
// Data: REST (/symbols, /api/v1/...) for history, WebSocket /ws for backfill + live ticks/candles.
// window.__tickstream exposes counters for the browser test.

const IST_OFFSET_S = 19800; // the chart's time axis shows IST wall-clock time
const IV_SECONDS = { "1s": 1, "1m": 60, "5m": 300 };
const TABLE_ROWS = 60;
const TABLE_EXTRA = 8; // instruments besides the selected one that feed the tick table
const $ = (id) => document.getElementById(id);

const stats = (window.__tickstream = { candles: 0, closed: 0, indicators: 0, ticks: 0, backfill: 0, dropped: 0, errors: [] });
const params = new URLSearchParams(location.search);
const state = { key: null, symbols: [], selected: null, interval: IV_SECONDS[params.get("interval")] ? params.get("interval") : "1m", ws: null, bar: null, lastTs: {}, rateCount: 0, retry: 0 };
let chart, candleSeries, overlays = {}, rsiSeries;

function apiKey() {
  const m = location.hash.match(/key=([A-Za-z0-9_\-]+)/);
  if (m) {
    localStorage.setItem("tickstream.key", m[1]);
    history.replaceState(null, "", location.pathname); // keep the key out of the address bar
  }
  return localStorage.getItem("tickstream.key");
}

function notice(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = !text;
}

async function api(path) {
  const res = await fetch(path, { headers: state.key ? { "X-API-Key": state.key } : {} });
  if (res.status === 401 || res.status === 403) {
    $("keyform").hidden = false;
    throw new Error(`${path}: ${res.status} (an API key with the read scope is needed)`);
  }
  if (!res.ok) throw new Error(`${path}: ${res.status} ${(await res.text()).slice(0, 200)}`);
  return res.json();
}

// ---------------------------------------------------------------------------- chart
function buildChart() {
  const LC = window.LightweightCharts;
  if (!LC) {
    notice(window.__tickstreamVendorMissing || "The chart library did not load: run `npm ci --prefix web` and reload.");
    return false;
  }
  chart = LC.createChart($("chart"), {
    autoSize: true,
    layout: { background: { color: "#161d2d" }, textColor: "#d6deeb", panes: { separatorColor: "#26304a" } },
    grid: { vertLines: { color: "#1f2840" }, horzLines: { color: "#1f2840" } },
    timeScale: { timeVisible: true, secondsVisible: true, borderColor: "#26304a" },
    rightPriceScale: { borderColor: "#26304a" },
    crosshair: { mode: 0 },
  });
  candleSeries = chart.addSeries(LC.CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", borderVisible: false, wickUpColor: "#26a69a", wickDownColor: "#ef5350",
  });
  const line = (color, width = 1, style = 0) =>
    chart.addSeries(LC.LineSeries, { color, lineWidth: width, lineStyle: style, priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false });
  overlays = {
    ema_9: line("#f0b429", 2), ema_21: line("#2962ff", 2),
    bb_upper: line("#9c7ce6", 1, 2), bb_middle: line("#9c7ce6", 1, 1), bb_lower: line("#9c7ce6", 1, 2),
    supertrend: line("#26a69a", 2),
  };
  rsiSeries = chart.addSeries(LC.LineSeries, { color: "#e57cd8", lineWidth: 1, priceLineVisible: false }, 1);
  const panes = chart.panes();
  if (panes[1]) panes[1].setHeight(110);
  for (const id of ["ov-ema", "ov-bb", "ov-st"]) $(id).addEventListener("change", applyOverlayVisibility);
  return true;
}

function applyOverlayVisibility() {
  const vis = { ema_9: "ov-ema", ema_21: "ov-ema", bb_upper: "ov-bb", bb_middle: "ov-bb", bb_lower: "ov-bb", supertrend: "ov-st" };
  for (const [name, box] of Object.entries(vis)) overlays[name].applyOptions({ visible: $(box).checked });
}

const chartTime = (ns) => Math.floor(ns / 1e9) + IST_OFFSET_S;

function indicatorPoints(candle) {
  const ind = candle.indicators || {};
  const time = chartTime(candle.start);
  const pts = {};
  for (const name of Object.keys(overlays)) {
    if (ind[name] != null) pts[name] = { time, value: ind[name] };
  }
  if (pts.supertrend) pts.supertrend.color = ind.supertrend_direction === -1 ? "#ef5350" : "#26a69a";
  return { pts, rsi: ind.rsi_14 != null ? { time, value: ind.rsi_14 } : null };
}

function setHistory(candles) {
  const bars = candles.map((c) => ({ time: chartTime(c.start), open: c.open, high: c.high, low: c.low, close: c.close }));
  candleSeries.setData(bars);
  const series = Object.fromEntries(Object.keys(overlays).map((k) => [k, []]));
  const rsi = [];
  for (const c of candles) {
    const { pts, rsi: r } = indicatorPoints(c);
    for (const [k, p] of Object.entries(pts)) series[k].push(p);
    if (r) rsi.push(r);
  }
  for (const [k, data] of Object.entries(series)) { overlays[k].setData(data); stats.indicators += data.length; }
  rsiSeries.setData(rsi);
  stats.indicators += rsi.length;
  const last = candles[candles.length - 1];
  state.bar = last ? { time: chartTime(last.start), open: last.open, high: last.high, low: last.low, close: last.close } : null;
  stats.candles += bars.length;
  chart.timeScale().scrollToRealTime();
}

function onTickForChart(t) {
  const iv = IV_SECONDS[state.interval];
  const bucket = Math.floor(t.ts_exchange / 1e9 / iv) * iv + IST_OFFSET_S;
  let bar = state.bar;
  if (bar && bucket < bar.time) return; // older than the bar on screen
  if (!bar || bucket > bar.time) bar = { time: bucket, open: t.ltp, high: t.ltp, low: t.ltp, close: t.ltp };
  else bar = { ...bar, high: Math.max(bar.high, t.ltp), low: Math.min(bar.low, t.ltp), close: t.ltp };
  state.bar = bar;
  candleSeries.update(bar);
  stats.candles += 1;
}

// Append a point; a point older than the series' last one replaces the existing point instead.
function put(series, point) {
  try {
    series.update(point);
  } catch (e) {
    try { series.update(point, true); } catch (e2) { return false; }
  }
  return true;
}

function onClosedCandle(c) {
  const time = chartTime(c.start);
  const bar = { time, open: c.open, high: c.high, low: c.low, close: c.close };
  if (!state.bar || time >= state.bar.time) state.bar = bar;
  put(candleSeries, bar);
  const { pts, rsi } = indicatorPoints(c);
  for (const [k, p] of Object.entries(pts)) stats.indicators += put(overlays[k], p) ? 1 : 0;
  if (rsi) stats.indicators += put(rsiSeries, rsi) ? 1 : 0;
  stats.closed += 1;
  stats.candles += 1;
}

// ---------------------------------------------------------------------------- tick table
function fmtTime(ns) {
  const d = new Date(ns / 1e6 + IST_OFFSET_S * 1000);
  return d.toISOString().slice(11, 23);
}

function addTickRows(ticks) {
  const body = $("tickrows");
  const frag = document.createDocumentFragment();
  for (const t of ticks.slice(-TABLE_ROWS)) {
    const prev = state.lastTs[t.symbol];
    const dir = prev == null ? "" : t.ltp > prev ? "up" : t.ltp < prev ? "down" : "";
    state.lastTs[t.symbol] = t.ltp;
    const tr = document.createElement("tr");
    const cells = [fmtTime(t.ts_exchange), t.symbol, t.ltp, t.ltq ?? "", t.volume ?? "", t.bid ?? "", t.ask ?? "", t.status];
    cells.forEach((v, i) => {
      const td = document.createElement("td");
      td.textContent = v;
      if (i === 2 && dir) td.className = dir;
      if (i === 7) td.className = v;
      tr.appendChild(td);
    });
    frag.prepend(tr);
  }
  body.prepend(frag);
  while (body.rows.length > TABLE_ROWS) body.deleteRow(body.rows.length - 1);
}

// ---------------------------------------------------------------------------- websocket
function handleMessage(msg) {
  const sel = state.selected;
  if (msg.type === "ticks" || msg.type === "backfill") {
    const ticks = msg.type === "ticks" ? msg.data : msg.ticks;
    if (msg.type === "backfill") stats.backfill += ticks.length;
    stats.ticks += ticks.length;
    state.rateCount += msg.type === "ticks" ? ticks.length : 0;
    for (const t of ticks) {
      if (sel && t.exchange === sel.exchange && t.token === sel.token && t.ltp != null) {
        onTickForChart(t);
        $("last").textContent = `${t.ltp}  ${t.status}`;
      }
    }
    addTickRows(ticks);
  } else if (msg.type === "candles" || msg.type === "candles_backfill") {
    for (const c of msg.data) {
      if (sel && c.exchange === sel.exchange && c.token === sel.token && c.interval === state.interval) onClosedCandle(c);
    }
  } else if (msg.type === "dropped") {
    stats.dropped += msg.count;
  } else if (msg.type === "error") {
    stats.errors.push(msg.message);
  }
}

function connect() {
  if (state.ws) state.ws.close();
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`, ["tickstream.v1", `key.${state.key}`]);
  state.ws = ws;
  $("conn").textContent = "ws: connecting";
  ws.onopen = () => {
    state.retry = 0;
    $("conn").textContent = "ws: live";
    $("conn").className = "badge ok";
    subscribe();
  };
  ws.onmessage = (ev) => handleMessage(JSON.parse(ev.data));
  ws.onclose = () => {
    if (state.ws !== ws) return;
    $("conn").textContent = "ws: reconnecting";
    $("conn").className = "badge bad";
    state.retry = Math.min(state.retry + 1, 6);
    setTimeout(connect, 500 * 2 ** state.retry);
  };
}

function subscribe() {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || !state.selected) return;
  const extra = state.symbols.slice(0, TABLE_EXTRA).map((s) => s.key);
  ws.send(JSON.stringify({ action: "unsubscribe" }));
  ws.send(JSON.stringify({
    action: "subscribe", tokens: [state.selected.key, ...extra], channels: ["ticks", "candles"],
    intervals: [state.interval], backfill: 50,
  }));
}

// ---------------------------------------------------------------------------- selection
async function select(inst) {
  state.selected = inst;
  $("title").textContent = `${inst.symbol}  ${inst.key}`;
  for (const li of $("results").children) li.classList.toggle("sel", li.dataset.key === inst.key);
  await loadHistory();
  subscribe();
}

async function loadHistory() {
  const inst = state.selected;
  const iv = IV_SECONDS[state.interval];
  const row = state.symbols.find((s) => s.key === inst.key);
  let range = "";
  if (row && row.ts_exchange) { // exchange time (the simulator's clock may differ from the wall)
    const end = BigInt(row.ts_exchange) + BigInt(iv * 1e9) * 2n;
    range = `&start=${end - BigInt(iv * 1e9) * 400n}&end=${end}`;
  }
  state.bar = null;
  try {
    const data = await api(`/api/v1/historical/candles?instrument=${encodeURIComponent(inst.key)}&interval=${state.interval}&indicators=true${range}`);
    setHistory(data.candles);
  } catch (e) {
    notice(String(e.message || e));
    setHistory([]);
  }
}

function renderResults(list) {
  const ul = $("results");
  ul.replaceChildren(...list.map((inst) => {
    const li = document.createElement("li");
    li.dataset.key = inst.key;
    li.innerHTML = "<span></span><small></small>";
    li.firstChild.textContent = inst.symbol;
    li.lastChild.textContent = inst.exchange;
    li.addEventListener("click", () => select(inst));
    if (state.selected && inst.key === state.selected.key) li.classList.add("sel");
    return li;
  }));
}

let searchTimer;
function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const q = $("search").value.trim();
    if (!q) return renderResults(state.symbols.slice(0, 40));
    try {
      const data = await api(`/api/v1/instruments/search?query=${encodeURIComponent(q)}&limit=40`);
      renderResults(data.results);
    } catch (e) { notice(String(e.message || e)); }
  }, 150);
}

// ---------------------------------------------------------------------------- health
async function pollHealth() {
  try {
    const res = await fetch("/health");
    const h = await res.json();
    $("health").textContent = h.status === "ok" ? "healthy" : `unhealthy: ${h.reasons.join("; ")}`;
    $("health").className = `badge ${h.status === "ok" ? "ok" : "bad"}`;
    $("feeds").textContent = `feeds ${h.feeds.connected}/${h.feeds.total}`;
    $("feeds").className = `badge ${h.feeds.connected === h.feeds.total ? "ok" : "bad"}`;
  } catch (e) {
    $("health").textContent = "server unreachable";
    $("health").className = "badge bad";
  }
}

function tickRate() {
  $("rate").textContent = `${state.rateCount} ticks/s`;
  state.rateCount = 0;
}

async function start() {
  state.key = apiKey();
  $("keyform").addEventListener("submit", (ev) => {
    ev.preventDefault();
    localStorage.setItem("tickstream.key", $("keyinput").value.trim());
    location.reload();
  });
  pollHealth();
  setInterval(pollHealth, 5000);
  setInterval(tickRate, 1000);
  if (!buildChart()) return;
  if (!state.key) {
    $("keyform").hidden = false;
    notice("Enter the API key that `tickstream run` printed on first start (or open the dashboard link it printed).");
    return;
  }
  for (const btn of $("intervals").querySelectorAll("button")) {
    btn.addEventListener("click", async () => {
      state.interval = btn.dataset.iv;
      for (const b of $("intervals").querySelectorAll("button")) b.classList.toggle("on", b === btn);
      await loadHistory();
      subscribe();
    });
  }
  for (const b of $("intervals").querySelectorAll("button")) b.classList.toggle("on", b.dataset.iv === state.interval);
  $("search").addEventListener("input", onSearch);
  try {
    const data = await api("/symbols");
    state.symbols = data.symbols;
  } catch (e) { notice(String(e.message || e)); return; }
  renderResults(state.symbols.slice(0, 40));
  const wanted = params.get("symbol");
  const first = (wanted && state.symbols.find((s) => s.symbol === wanted || s.key === wanted))
    || state.symbols.find((s) => s.symbol === "NIFTY 50") || state.symbols.find((s) => s.ltp != null) || state.symbols[0];
  connect();
  if (first) await select(first);
}

start();
