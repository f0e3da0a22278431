// darkpool dashboard: reads /api/dashboard (one JSON document per symbol), follows /api/stream
// (Server-Sent Events) for live updates, and runs SQL through /api/sql. No framework, no CDN:
// Chart.js is bundled next to this file.
(() => {
  'use strict';

  // Venue kinds keep one colour everywhere (lighter tints of the report's purple/orange/teal,
  // for a dark background).
  const KIND = { dark: '#9575CD', lit: '#FFA726', otc: '#26A69A', unknown: '#9E9E9E' };
  const PALETTE = ['#4FC3F7', '#AED581', '#F06292', '#FFD54F', '#BA68C8', '#4DB6AC', '#FF8A65', '#90A4AE'];
  const REFRESH_GAP_MS = 2000;
  const SQL_TABLE_ROWS = 1000;

  const state = {
    symbol: '',
    data: null,
    charts: {},
    live: null,
    pipeline: null,
    pipelineError: '',
    restartIn: null,
    liveEvents: 0,
    refreshes: 0,
    loading: false,
    pending: false,
    lastRefresh: 0,
  };
  // For the browser tests and for the curious: the page's state, charts included.
  window.darkpool = state;

  const $ = (selector) => document.querySelector(selector);
  const $$ = (selector) => Array.from(document.querySelectorAll(selector));

  // ---- formatting -------------------------------------------------------------------------
  const thousands = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
  function scaled(v, units) {
    const a = Math.abs(v);
    for (const [limit, suffix] of units) {
      if (a >= limit) return trim((v / limit).toFixed(a / limit >= 100 ? 0 : a / limit >= 10 ? 1 : 2)) + suffix;
    }
    return decimal.format(v);
  }
  // 50.0 -> 50, 2.50 -> 2.5: axis ticks read cleaner.
  const trim = (text) => (text.includes('.') ? text.replace(/\.?0+$/, '') : text);
  const UNITS = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  const money = (v) => (v == null || !isFinite(v) ? '–' : (v < 0 ? '-$' : '$') + scaled(Math.abs(v), UNITS));
  const shares = (v) => (v == null || !isFinite(v) ? '–' : scaled(v, UNITS));
  const count = (v) => (v == null || !isFinite(v) ? '–' : thousands.format(v));
  const pct = (v) => (v == null || !isFinite(v) ? '–' : (v * 100).toFixed(1) + '%');
  const when = (iso) => (iso ? iso.slice(0, 16).replace('T', ' ') : '');
  const clock = (iso) => (iso ? iso.slice(5, 16).replace('T', ' ') : '');

  // ---- charts -----------------------------------------------------------------------------
  function chartDefaults() {
    Chart.defaults.color = '#cbd5e1';
    Chart.defaults.borderColor = 'rgba(148, 163, 184, 0.14)';
    Chart.defaults.font.family = 'ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
    Chart.defaults.maintainAspectRatio = false;
    // No animation: live refreshes every few seconds, and charts drawn in a hidden tab must not
    // slide into place when it is shown.
    Chart.defaults.animation = false;
    Chart.defaults.plugins.legend.labels.boxWidth = 12;
  }

  // Show `text` over a chart (loading, empty, error), or hide the overlay when text is null.
  function overlay(id, text) {
    const el = document.querySelector(`.state[data-for="${id}"]`);
    if (!el) return;
    el.textContent = text || '';
    el.hidden = !text;
  }

  function draw(id, config, emptyText) {
    const hasData = config.data.datasets.some((d) => d.data.length > 0);
    let chart = state.charts[id];
    if (chart) {
      chart.data = config.data;
      chart.options = config.options;
      chart.update();
    } else {
      chart = new Chart(document.getElementById(id), config);
      state.charts[id] = chart;
    }
    overlay(id, hasData ? null : emptyText);
  }

  const moneyAxis = (title) => ({
    beginAtZero: true,
    title: { display: !!title, text: title },
    ticks: { callback: (v) => money(v) },
  });

  const kindColour = (kind) => KIND[kind] || KIND.unknown;

  // One bar per venue, coloured by its kind.
  function venueBar(id, venues, field, label, axis, tooltip, empty) {
    draw(id, {
      type: 'bar',
      data: {
        labels: venues.map((v) => v.venue),
        datasets: [{ label, data: venues.map((v) => v[field]), backgroundColor: venues.map((v) => kindColour(v.kind)) }],
      },
      options: {
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => tooltip(c.raw, venues[c.dataIndex]) } } },
        scales: { y: axis, x: { ticks: { maxRotation: 60 } } },
      },
    }, empty);
  }

  function venueBars(venues, empty) {
    venueBar('chart-venue-value', venues, 'total_value', 'Traded value', moneyAxis('USD'),
      (raw, v) => `${money(raw)} (${v.kind}, ${pct(v.value_share)})`, empty);
    venueBar('chart-venue-trades', venues, 'num_trades', 'Trades',
      { beginAtZero: true, title: { display: true, text: 'trades' }, ticks: { callback: (v) => shares(v) } },
      (raw) => `${count(raw)} trades`, empty);

    const top = venues.slice(0, 8);
    const rest = venues.slice(8).reduce((s, v) => s + (v.total_value || 0), 0);
    const labels = top.map((v) => v.venue).concat(rest > 0 ? ['OTHER'] : []);
    const values = top.map((v) => v.total_value).concat(rest > 0 ? [rest] : []);
    const colours = top.map((v, i) => shade(kindColour(v.kind), i)).concat(rest > 0 ? ['#616161'] : []);
    draw('chart-venue-share', {
      type: 'doughnut',
      data: { labels, datasets: [{ data: values, backgroundColor: colours, borderColor: '#111827', borderWidth: 2 }] },
      options: {
        plugins: {
          legend: { position: 'right' },
          tooltip: { callbacks: { label: (c) => `${c.label}: ${pct(c.raw / values.reduce((a, b) => a + b, 0))} (${money(c.raw)})` } },
        },
      },
    }, empty);
  }

  // Several venues of one kind share a hue; step the lightness so slices stay apart.
  function shade(hex, i) {
    const n = parseInt(hex.slice(1), 16);
    const f = 1 - (i % 4) * 0.16;
    const c = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map((x) => Math.round(x * f));
    return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
  }

  function liquidity(rows, empty) {
    const times = [...new Set(rows.map((r) => r.t))].sort();
    const index = new Map(times.map((t, i) => [t, i]));
    const totals = new Map();
    for (const r of rows) totals.set(r.venue, (totals.get(r.venue) || 0) + (r.value || 0));
    const top = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([v]) => v);
    const series = new Map(top.concat(['OTHER']).map((v) => [v, new Array(times.length).fill(0)]));
    for (const r of rows) {
      const key = top.includes(r.venue) ? r.venue : 'OTHER';
      series.get(key)[index.get(r.t)] += r.value || 0;
    }
    const datasets = [...series.entries()]
      .filter(([v, d]) => v !== 'OTHER' || d.some((x) => x > 0))
      .map(([v, d], i) => ({
        label: v, data: times.length ? d : [], borderColor: v === 'OTHER' ? '#757575' : PALETTE[i % PALETTE.length],
        backgroundColor: 'transparent', pointRadius: 0, borderWidth: 1.5, tension: 0.2,
      }));
    draw('chart-liquidity', {
      type: 'line',
      data: { labels: times.map(clock), datasets },
      options: {
        interaction: { mode: 'index', intersect: false },
        plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${money(c.raw)}` } } },
        scales: { y: moneyAxis('traded value per window'), x: { ticks: { maxTicksLimit: 12 } } },
      },
    }, empty);
  }

  function darkLit(rows, empty) {
    const labels = rows.map((r) => clock(r.t));
    const kinds = ['dark', 'otc', 'lit', 'unknown'].filter((k) => k !== 'unknown' || rows.some((r) => r.unknown > 0));
    draw('chart-kind-value', {
      type: 'line',
      data: {
        labels,
        datasets: kinds.map((k) => ({
          label: { dark: 'Dark pools (ATS)', lit: 'Lit exchanges', otc: 'OTC / TRF', unknown: 'Unregistered venue' }[k],
          data: rows.map((r) => r[k] || 0), borderColor: KIND[k], backgroundColor: KIND[k] + '99',
          fill: true, pointRadius: 0, borderWidth: 1, stack: 'value',
        })),
      },
      options: {
        interaction: { mode: 'index', intersect: false },
        plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${money(c.raw)}` } } },
        scales: { y: { ...moneyAxis('traded value per window'), stacked: true }, x: { ticks: { maxTicksLimit: 12 } } },
      },
    }, empty);
    draw('chart-dark-share', {
      type: 'line',
      data: {
        labels,
        datasets: [
          { label: 'Dark share', data: rows.map((r) => (r.total > 0 ? (100 * r.dark) / r.total : null)), borderColor: KIND.dark, pointRadius: 0, borderWidth: 1.5 },
          { label: 'Off-exchange share (dark + OTC)', data: rows.map((r) => (r.total > 0 ? (100 * (r.dark + r.otc)) / r.total : null)), borderColor: KIND.otc, pointRadius: 0, borderWidth: 1, borderDash: [4, 3] },
        ],
      },
      options: {
        interaction: { mode: 'index', intersect: false },
        plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${c.raw == null ? '–' : c.raw.toFixed(1) + '%'}` } } },
        scales: { y: { min: 0, max: 100, title: { display: true, text: '% of traded value' }, ticks: { callback: (v) => v + '%' } }, x: { ticks: { maxTicksLimit: 12 } } },
      },
    }, empty);
  }

  function tradeSize(venues, empty) {
    const sorted = venues.filter((v) => v.num_trades > 0).sort((a, b) => b.avg_trade_size - a.avg_trade_size);
    draw('chart-trade-size', {
      type: 'bar',
      data: {
        labels: sorted.map((v) => v.venue),
        datasets: [{ label: 'Average trade size', data: sorted.map((v) => v.avg_trade_size), backgroundColor: sorted.map((v) => kindColour(v.kind)) }],
      },
      options: {
        indexAxis: 'y',
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => `${decimal.format(c.raw)} shares per trade (${count(sorted[c.dataIndex].num_trades)} trades)` } } },
        scales: { x: { beginAtZero: true, title: { display: true, text: 'shares per trade' }, ticks: { callback: (v) => shares(v) } }, y: { ticks: { autoSkip: false } } },
      },
    }, empty);
  }

  function venueMap(sites, empty) {
    const max = Math.max(1, ...sites.map((s) => s.total_value || 0));
    const lons = sites.map((s) => s.longitude);
    const lats = sites.map((s) => s.latitude);
    const pad = (lo, hi, p) => [Math.floor((lo - p) / 5) * 5, Math.ceil((hi + p) / 5) * 5];
    const [x0, x1] = sites.length ? pad(Math.min(...lons), Math.max(...lons), 3) : [-125, -65];
    const [y0, y1] = sites.length ? pad(Math.min(...lats), Math.max(...lats), 2) : [25, 50];
    draw('chart-map', {
      type: 'bubble',
      data: {
        datasets: [{
          label: 'Sites',
          data: sites.map((s) => ({ x: s.longitude, y: s.latitude, r: 4 + 36 * Math.sqrt((s.total_value || 0) / max), site: s })),
          backgroundColor: sites.map((s) => mix(KIND.lit, KIND.dark, s.dark_share || 0) + 'bb'),
          borderColor: '#e5e7eb', borderWidth: 1,
        }],
      },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (c) => { const s = c.raw.site; return [`${s.site || 'site'} — ${s.venues}`, `${money(s.total_value)} traded, dark share ${pct(s.dark_share)}`]; } } },
        },
        scales: {
          x: { min: x0, max: x1, title: { display: true, text: 'longitude' }, ticks: { callback: (v) => v + '°' } },
          y: { min: y0, max: y1, title: { display: true, text: 'latitude' }, ticks: { callback: (v) => v + '°' } },
        },
      },
    }, empty);
  }

  function mix(a, b, t) {
    const p = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
    const [ca, cb] = [p(a), p(b)];
    const c = ca.map((x, i) => Math.round(x + (cb[i] - x) * Math.min(1, Math.max(0, t))));
    return '#' + c.map((x) => x.toString(16).padStart(2, '0')).join('');
  }

  function blocksTable(blocks, empty) {
    const body = $('#blocks tbody');
    body.replaceChildren(...blocks.map((b) => row([
      when(b.time), b.symbol, b.venue, kindBadge(b.kind), num(decimal.format(b.price)), num(count(b.quantity)), num(money(b.trade_value)), b.side || '',
    ])));
    overlay('blocks', blocks.length ? null : empty);
  }

  function kindBadge(kind) {
    const span = document.createElement('span');
    span.className = 'badge';
    span.style.color = kindColour(kind);
    span.textContent = kind;
    return span;
  }

  function num(text) {
    const span = document.createElement('span');
    span.className = 'num';
    span.textContent = text;
    return span;
  }

  function row(cells, tag = 'td') {
    const tr = document.createElement('tr');
    for (const cell of cells) {
      const td = document.createElement(tag);
      if (cell instanceof Node) {
        if (cell.className === 'num') td.className = 'num';
        td.append(cell);
      } else td.textContent = cell == null ? '' : String(cell);
      tr.append(td);
    }
    return tr;
  }

  // ---- data ---------------------------------------------------------------------------------
  async function api(path, init) {
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new Error(`the server cannot be reached (${e.message})`);
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        if (body && body.message) message = `${body.error}: ${body.message}`;
      } catch (_) { /* not JSON */ }
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return response;
  }

  function banner(text, kind) {
    const el = $('#banner');
    el.textContent = text || '';
    el.className = text ? `rounded-lg border px-4 py-3 text-sm ${kind === 'error' ? 'banner-error' : 'banner-info'}` : 'hidden';
  }

  async function refresh() {
    if (state.loading) { state.pending = true; return; }
    state.loading = true;
    state.lastRefresh = Date.now();
    const symbol = state.symbol;
    try {
      const response = await api('/api/dashboard' + (symbol ? '?symbol=' + encodeURIComponent(symbol) : ''));
      const data = await response.json();
      if (symbol !== state.symbol) return; // the user switched meanwhile; that load follows
      state.data = data;
      state.refreshes += 1;
      render(data);
      showPipelineNotice();
      if (state.refreshes % 15 === 0) loadSymbols();
    } catch (e) {
      banner(`Could not load the dashboard: ${e.message}`, 'error');
      if (!state.data) {
        $$('.state').forEach((el) => { el.textContent = 'Could not load: ' + e.message; el.hidden = false; });
      }
    } finally {
      state.loading = false;
      if (state.pending) { state.pending = false; refresh(); }
    }
  }

  function render(d) {
    const s = d.summary || {};
    const who = d.symbol ? d.symbol : 'any symbol';
    const empty = (s.windows || 0) === 0
      ? (d.live ? `No windows yet for ${who}: trades are arriving, the first window shows within seconds.` : `The lake holds no windows for ${who}. Ingest trades first (darkpool ingest FILE).`)
      : `Nothing to show for ${who}.`;
    for (const el of $$('[data-stat]')) {
      const key = el.dataset.stat;
      const v = s[key];
      el.textContent = key.endsWith('share') ? pct(v) : key === 'total_value' ? money(v) : key === 'total_quantity' ? shares(v) : count(v);
    }
    $('#range').textContent = s.windows
      ? `${count(s.windows)} windows over ${count(s.venues)} venues and ${count(s.symbols)} symbol${s.symbols === 1 ? '' : 's'}, ${when(s.first_window)} → ${when(s.last_window)} UTC`
      : '';
    venueBars(d.venues || [], empty);
    liquidity(d.by_venue || [], empty);
    darkLit(d.by_kind || [], empty);
    tradeSize(d.venues || [], empty);
    venueMap(d.sites || [], empty);
    blocksTable(d.blocks || [], s.windows ? `No block prints for ${who} in the committed trades.` : empty);
    $('#updated').textContent = new Date().toISOString().slice(11, 19) + ' UTC';
    pipelineFigures(d.pipeline, d.following);
  }

  // What the embedded pipeline landed since the server started, its watermark and (Kafka) lag;
  // or, following a lake other processes fill, when they last committed to it.
  function pipelineFigures(p, following) {
    const el = $('#pipeline');
    el.hidden = !p && !following;
    if (following) {
      const last = following.last_commit;
      el.textContent = last ? `Following the lake: last commit ${last.slice(0, 19).replace('T', ' ')} UTC` : 'Following the lake: no commit yet';
      el.title = 'No pipeline in this server: darkpool ingest processes fill the lake; their open windows show as of their last commit.';
      return;
    }
    if (!p) return;
    const parts = [`Pipeline: ${count(p.trades_landed)} trades landed since start`];
    if (p.watermark) parts.push(`watermark ${p.watermark.slice(0, 19).replace('T', ' ')} UTC`);
    if (p.messages_behind != null) {
      const n = p.messages_behind;
      parts.push(`${p.paused_partitions ? 'at least ' : ''}${count(n)} Kafka message${n === 1 ? '' : 's'} behind`);
    }
    el.textContent = parts.join(' · ');
    el.title = `${count(p.rejected)} rejected, ${count(p.late)} late, ${count(p.restarts)} restarts since the server started` +
      (p.paused_partitions ? `; ${count(p.paused_partitions)} partitions paused for watermark alignment (their lag as of the pause)` : '');
  }

  async function loadSymbols() {
    try {
      const symbols = await (await api('/api/symbols')).json();
      const select = $('#symbol');
      const known = new Set(Array.from(select.options).map((o) => o.value));
      for (const s of symbols) {
        if (known.has(s.symbol)) continue;
        const option = document.createElement('option');
        option.value = s.symbol;
        option.textContent = s.symbol;
        select.append(option);
      }
    } catch (e) {
      banner(`Could not load the symbols: ${e.message}`, 'error');
    }
  }

  // Live updates: refresh at most every REFRESH_GAP_MS while events arrive.
  let timer = null;
  function scheduleRefresh() {
    if (timer) return;
    const wait = Math.max(0, state.lastRefresh + REFRESH_GAP_MS - Date.now());
    timer = setTimeout(() => { timer = null; refresh(); }, wait);
  }

  // Whole class names, so that Tailwind (which scans this file as text) builds each of them.
  const PILLS = { live: 'pill-live', idle: 'pill-idle', wait: 'pill-wait', error: 'pill-error' };

  function status(text, kind, detail) {
    const el = $('#status');
    el.textContent = text;
    el.className = `pill ${PILLS[kind]}`;
    el.title = detail || '';
  }

  // Why the pipeline is not running, while it is not (a banner that a refresh keeps).
  function pipelineNotice() {
    if (state.pipeline === 'failed') {
      return `The in-process pipeline stopped: ${state.pipelineError}. The lake is still served, ` +
        'without new trades; restart darkpool serve to resume from the lake.';
    }
    if (state.pipeline === 'restarting') {
      return `The in-process pipeline failed: ${state.pipelineError}. It starts again from the ` +
        `lake in ${state.restartIn} s, and nothing is lost; meanwhile the lake is served as it is.`;
    }
    return null;
  }

  function showPipelineNotice() {
    banner(pipelineNotice(), state.pipeline === 'failed' ? 'error' : 'info');
  }

  // What the stream's last `status` event said: live or not, and how the pipeline stands.
  function showLive() {
    showPipelineNotice();
    if (state.pipeline === 'failed') {
      status('pipeline stopped', 'error', pipelineNotice());
    } else if (state.pipeline === 'restarting') {
      status('pipeline restarting', 'wait', pipelineNotice());
    } else if (state.pipeline === 'finished') {
      status('pipeline finished', 'idle');
    } else if (state.live) {
      status('live', 'live');
    } else if (state.following) {
      status('following the lake', 'live', 'No pipeline in this server: it shows what other processes (darkpool ingest) commit to the lake, their open windows included, within seconds of each commit.');
    } else {
      status('lake only', 'idle');
    }
  }

  function follow() {
    if (!window.EventSource) { status('no live updates', 'wait'); return; }
    const source = new EventSource('/api/stream');
    source.addEventListener('status', (e) => {
      let said = {};
      try { said = JSON.parse(e.data); } catch (_) { /* shown as lake only */ }
      state.live = said.live === true;
      state.following = said.following === true;
      state.pipeline = said.pipeline || null;
      state.pipelineError = said.error || '';
      state.restartIn = said.restart_in_seconds;
      showLive();
    });
    const onWindows = (e) => {
      state.liveEvents += 1;
      $('#live-events').textContent = count(state.liveEvents);
      scheduleRefresh();
    };
    source.addEventListener('window', onWindows);
    source.addEventListener('open', onWindows);
    source.onerror = () => status('reconnecting…', 'wait');
    source.onopen = () => { if (state.live != null) showLive(); };
  }

  // ---- FINRA tables ---------------------------------------------------------------------------
  const FINRA_EMPTY = 'No FINRA data for this symbol. Load FINRA ATS weekly or Reg SHO files: darkpool ingest FILE.';

  async function namedRows(name, params) {
    const query = new URLSearchParams(params).toString();
    return (await api(`/api/queries/${name}${query ? '?' + query : ''}`)).json();
  }

  async function loadFinraSymbols() {
    const select = $('#finra-symbol');
    try {
      const symbols = await namedRows('finra_symbols', {});
      select.replaceChildren(...symbols.map((s) => {
        const option = document.createElement('option');
        option.value = s.symbol;
        option.textContent = s.symbol;
        return option;
      }));
      $('#finra-note').textContent = symbols.length ? `${count(symbols.length)} symbols` : FINRA_EMPTY;
      if (state.symbol && symbols.some((s) => s.symbol === state.symbol)) select.value = state.symbol;
      state.finraSymbols = symbols.length;
      return symbols.length > 0;
    } catch (e) {
      banner(`Could not load the FINRA symbols: ${e.message}`, 'error');
      return false;
    }
  }

  async function loadFinra() {
    if (state.finraSymbols == null && !(await loadFinraSymbols())) {
      atsShare([]);
      shortRatio([]);
      return;
    }
    const symbol = $('#finra-symbol').value;
    if (!symbol) { atsShare([]); shortRatio([]); return; }
    try {
      const [ats, short] = await Promise.all([
        namedRows('ats_symbol_share', { symbol }),
        namedRows('short_ratio_symbol', { symbol }),
      ]);
      if (symbol !== $('#finra-symbol').value) return;
      atsShare(ats);
      shortRatio(short);
    } catch (e) {
      banner(`Could not load the FINRA views: ${e.message}`, 'error');
    }
  }

  // Stacked bars: one per week, a segment per ATS (the 8 largest, the rest as OTHER).
  function atsShare(rows) {
    const weeks = [...new Set(rows.map((r) => r.week_start))].sort();
    const totals = new Map();
    for (const r of rows) totals.set(r.mpid, (totals.get(r.mpid) || 0) + r.shares);
    const top = [...totals.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 8).map(([m]) => m);
    const series = new Map(top.concat(['OTHER']).map((m) => [m, new Array(weeks.length).fill(0)]));
    for (const r of rows) {
      const key = top.includes(r.mpid) ? r.mpid : 'OTHER';
      series.get(key)[weeks.indexOf(r.week_start)] += r.ats_share * 100;
    }
    const datasets = [...series.entries()]
      .filter(([m, d]) => m !== 'OTHER' || d.some((x) => x > 0))
      .map(([m, d], i) => ({ label: m, data: weeks.length ? d : [], backgroundColor: m === 'OTHER' ? '#757575' : PALETTE[i % PALETTE.length] }));
    draw('chart-ats-share', {
      type: 'bar',
      data: { labels: weeks, datasets },
      options: {
        plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${c.raw.toFixed(1)}%` } } },
        scales: { x: { stacked: true }, y: { stacked: true, max: 100, beginAtZero: true, ticks: { callback: (v) => v + '%' } } },
      },
    }, FINRA_EMPTY);
  }

  function shortRatio(rows) {
    const line = (label, field, colour, dash) => ({
      label, data: rows.map((r) => (r[field] == null ? null : r[field] * 100)),
      borderColor: colour, backgroundColor: 'transparent', borderDash: dash, pointRadius: 2, borderWidth: 1.5, tension: 0.1,
    });
    draw('chart-short-ratio', {
      type: 'line',
      data: {
        labels: rows.map((r) => r.date),
        datasets: rows.length ? [line('daily', 'short_ratio', PALETTE[0], []), line('20-day', 'short_ratio_20d', PALETTE[1], [6, 4])] : [],
      },
      options: {
        interaction: { mode: 'index', intersect: false },
        plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${c.raw == null ? '–' : c.raw.toFixed(1) + '%'}` } } },
        scales: { y: { beginAtZero: true, max: 100, ticks: { callback: (v) => v + '%' } } },
      },
    }, FINRA_EMPTY);
  }

  // ---- tabs -------------------------------------------------------------------------------
  function showTab(name) {
    for (const b of $$('[role="tab"]')) b.setAttribute('aria-selected', String(b.dataset.tab === name));
    for (const p of $$('[data-panel]')) p.hidden = p.dataset.panel !== name;
    // Charts drawn while hidden have no size; let them measure again.
    for (const c of Object.values(state.charts)) c.resize();
    if (location.hash !== '#' + name) history.replaceState(null, '', '#' + name);
    if (name === 'finra') loadFinra();
  }

  // ---- SQL console --------------------------------------------------------------------------
  function parseCsv(text) {
    const rows = [];
    let field = '';
    let current = [];
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (quoted) {
        if (ch === '"') {
          if (text[i + 1] === '"') { field += '"'; i++; } else quoted = false;
        } else field += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ',') { current.push(field); field = ''; }
      else if (ch === '\n' || ch === '\r') {
        if (ch === '\r' && text[i + 1] === '\n') i++;
        current.push(field); rows.push(current); current = []; field = '';
      } else field += ch;
    }
    if (field !== '' || current.length) { current.push(field); rows.push(current); }
    return rows;
  }

  function sqlError(message) {
    const el = $('#sql-error');
    el.textContent = message || '';
    el.hidden = !message;
  }

  async function runSql() {
    const sql = $('#sql').value;
    const started = performance.now();
    $('#sql-status').textContent = 'running…';
    sqlError(null);
    $('#run').disabled = true;
    try {
      const response = await api('/api/sql', { method: 'POST', headers: { 'content-type': 'text/plain', accept: 'text/csv' }, body: sql });
      const text = await response.text();
      const rows = parseCsv(text);
      const header = rows.shift() || [];
      const total = Number(response.headers.get('x-darkpool-rows') || rows.length);
      const truncated = response.headers.get('x-darkpool-truncated') === 'true';
      $('#sql-result thead').replaceChildren(row(header, 'th'));
      $('#sql-result tbody').replaceChildren(...rows.slice(0, SQL_TABLE_ROWS).map((r) => {
        const tr = row(r);
        tr.querySelectorAll('td').forEach((td) => { if (/^-?[\d.]+(e[+-]?\d+)?$/i.test(td.textContent)) td.className = 'num'; });
        return tr;
      }));
      const ms = Math.round(performance.now() - started);
      $('#sql-status').textContent = `${count(total)} row${total === 1 ? '' : 's'} in ${ms} ms` +
        (rows.length > SQL_TABLE_ROWS ? `, showing the first ${count(SQL_TABLE_ROWS)}` : '') +
        (truncated ? ' (cut at the server’s row limit)' : '');
      $('#download-csv').disabled = false;
      $('#download-parquet').disabled = false;
    } catch (e) {
      $('#sql-status').textContent = '';
      sqlError(e.message);
    } finally {
      $('#run').disabled = false;
    }
  }

  async function download(format) {
    const sql = $('#sql').value;
    const accept = format === 'csv' ? 'text/csv' : 'application/vnd.apache.parquet';
    try {
      const response = await api('/api/sql', { method: 'POST', headers: { 'content-type': 'text/plain', accept }, body: sql });
      const blob = await response.blob();
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = `darkpool-query.${format}`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (e) {
      sqlError(e.message);
    }
  }

  async function loadNamed() {
    try {
      const queries = await (await api('/api/queries')).json();
      const select = $('#named');
      for (const q of queries) {
        const option = document.createElement('option');
        option.value = q.name;
        option.textContent = q.name;
        option.title = q.description;
        select.append(option);
      }
      select.addEventListener('change', () => {
        const q = queries.find((x) => x.name === select.value);
        if (q) $('#sql').value = q.sql.trim();
      });
    } catch (_) { /* the console still runs typed SQL */ }
  }

  // ---- start --------------------------------------------------------------------------------
  function start() {
    if (!window.Chart) {
      banner('The chart library did not load (/assets/chart.umd.min.js).', 'error');
      return;
    }
    chartDefaults();
    const origin = location.origin;
    $('#kepler-link').href = 'https://kepler.gl/demo?mapUrl=' + encodeURIComponent(origin + '/api/kepler/map.json');
    $('#kepler-csv').textContent = origin + '/api/heatmap_data.csv';
    for (const b of $$('[role="tab"]')) b.addEventListener('click', () => showTab(b.dataset.tab));
    const initial = location.hash.slice(1);
    showTab($$('[data-panel]').some((p) => p.dataset.panel === initial) ? initial : 'overview');
    $('#symbol').addEventListener('change', (e) => { state.symbol = e.target.value; refresh(); });
    $('#finra-symbol').addEventListener('change', loadFinra);
    $('#run').addEventListener('click', runSql);
    $('#sql').addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runSql(); } });
    $('#download-csv').addEventListener('click', () => download('csv'));
    $('#download-parquet').addEventListener('click', () => download('parquet'));
    loadNamed();
    loadSymbols();
    refresh();
    follow();
  }

  start();
})();
