// Browser test of the dashboard: a real headless Chromium (Debian's /usr/bin/chromium) driven
// by playwright-core against a running `darkpool serve`.
//
//   DARKPOOL_URL=http://127.0.0.1:5001 [DARKPOOL_EMPTY_URL=...] [DARKPOOL_FAILED_URL=...] \
//     [DARKPOOL_RESTARTING_URL=...] [DARKPOOL_FOLLOWER_URL=...] \
//     [DARKPOOL_SCREENSHOTS=dir] \
//     node web/tests/dashboard.mjs
//
// tests/dashboard.rs starts the servers and runs this as part of `cargo test`. Exits non-zero
// with the failed check on stderr.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const url = process.env.DARKPOOL_URL;
const emptyUrl = process.env.DARKPOOL_EMPTY_URL;
const failedUrl = process.env.DARKPOOL_FAILED_URL;
const restartingUrl = process.env.DARKPOOL_RESTARTING_URL;
// A `serve --no-ingest` over the lake DARKPOOL_URL's pipeline fills.
const followerUrl = process.env.DARKPOOL_FOLLOWER_URL;
const shots = process.env.DARKPOOL_SCREENSHOTS || 'screenshots';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
assert.ok(url, 'DARKPOOL_URL is not set');
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
});

let step = 'start';
const check = async (name, fn) => {
  step = name;
  const started = Date.now();
  await fn();
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
};

// Page errors and failed requests to our own server fail the test.
function watch(page) {
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('requestfailed', (r) => {
    // An event stream cut when the page closes is not a failure.
    if (!r.url().includes('/api/stream')) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  return problems;
}

const chartPoints = (page, id) => page.evaluate((id) => {
  const c = window.darkpool.charts[id];
  return c ? c.data.datasets.reduce((n, d) => n + d.data.filter((x) => x != null).length, 0) : -1;
}, id);
const overlayShown = (page, id) => page.evaluate((id) => !document.querySelector(`.state[data-for="${id}"]`).hidden, id);

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const problems = watch(page);

  await check('the dashboard loads with data in every summary figure and overview chart', async () => {
    await page.goto(url + '/', { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(() => window.darkpool && window.darkpool.refreshes >= 1, null, { timeout: 20000 });
    for (const key of ['total_value', 'total_quantity', 'num_trades', 'dark_share', 'block_trades']) {
      const text = await page.textContent(`[data-stat="${key}"]`);
      assert.notEqual(text.trim(), '–', `summary ${key} is empty`);
    }
    assert.match(await page.textContent('[data-stat="total_value"]'), /^\$[\d.]+[KMBT]?$/);
    for (const id of ['chart-venue-value', 'chart-venue-share', 'chart-venue-trades']) {
      assert.ok((await chartPoints(page, id)) > 0, `${id} has no data`);
      assert.equal(await overlayShown(page, id), false, `${id} still shows its overlay`);
    }
    await page.waitForFunction(() => document.querySelectorAll('#symbol option').length >= 3, null, { timeout: 10000 });
    await page.screenshot({ path: join(shots, 'overview.png') });
  });

  await check('switching symbol reloads the figures for that symbol', async () => {
    const all = await page.evaluate(() => window.darkpool.data.summary.num_trades);
    const symbol = await page.$eval('#symbol option:nth-child(2)', (o) => o.value);
    await page.selectOption('#symbol', symbol);
    await page.waitForFunction((s) => window.darkpool.data && window.darkpool.data.symbol === s, symbol, { timeout: 15000 });
    const one = await page.evaluate(() => window.darkpool.data.summary.num_trades);
    assert.ok(one > 0 && one < all, `${symbol}: ${one} trades, all symbols: ${all}`);
    assert.ok((await chartPoints(page, 'chart-venue-value')) > 0);
    await page.screenshot({ path: join(shots, 'symbol.png') });
    await page.selectOption('#symbol', '');
    await page.waitForFunction(() => window.darkpool.data.symbol === null, null, { timeout: 15000 });
  });

  for (const [tab, id] of [['timeseries', 'chart-liquidity'], ['darklit', 'chart-kind-value'], ['size', 'chart-trade-size'], ['map', 'chart-map']]) {
    await check(`tab ${tab} shows ${id} with data`, async () => {
      await page.click(`[role="tab"][data-tab="${tab}"]`);
      assert.equal(await page.isVisible(`[data-panel="${tab}"]`), true);
      assert.equal(await page.isVisible('[data-panel="overview"]'), false);
      assert.ok((await chartPoints(page, id)) > 0, `${id} has no data`);
      assert.equal(await overlayShown(page, id), false, await page.textContent(`.state[data-for="${id}"]`));
      const box = await page.locator('#' + id).boundingBox();
      assert.ok(box && box.width > 300 && box.height > 200, `${id} is ${JSON.stringify(box)}`);
      await page.screenshot({ path: join(shots, `${tab}.png`) });
    });
  }

  await check('the FINRA tab shows a symbol\'s ATS share by week and its short volume ratio', async () => {
    await page.click('[role="tab"][data-tab="finra"]');
    await page.waitForFunction(() => document.querySelectorAll('#finra-symbol option').length >= 2, null, { timeout: 10000 });
    // AAPL has the most ATS shares in the fixtures, so it comes first.
    assert.equal(await page.$eval('#finra-symbol', (s) => s.value), 'AAPL');
    const read = () => page.evaluate(() => {
      const ats = window.darkpool.charts['chart-ats-share'];
      const short = window.darkpool.charts['chart-short-ratio'];
      if (!ats || !short) return null;
      return {
        weeks: ats.data.labels,
        stacks: ats.data.labels.map((_, i) => ats.data.datasets.reduce((s, d) => s + d.data[i], 0)),
        byAts: Object.fromEntries(ats.data.datasets.map((d) => [d.label, d.data])),
        days: short.data.labels,
        short: short.data.datasets.map((d) => d.data.map((v) => Math.round(v * 1000) / 1000)),
      };
    });
    await page.waitForFunction(() => window.darkpool.charts['chart-ats-share'] && window.darkpool.charts['chart-short-ratio'], null, { timeout: 10000 });
    let v = await read();
    // Week 2024-01-08: UBSA 700k of 1.1M (the re-published figure), SGMA 300k, JPMX 100k.
    assert.deepEqual(v.weeks, ['2024-01-08', '2024-01-15']);
    v.stacks.forEach((s) => assert.ok(Math.abs(s - 100) < 1e-9, `a week's shares sum to ${s}%`));
    assert.ok(Math.abs(v.byAts.UBSA[0] - 700 / 11) < 1e-9, JSON.stringify(v.byAts));
    // Reg SHO CNMS: 400/1,000 and 600/1,000; rolling (400 + 600) / 2,000.
    assert.deepEqual(v.days, ['2024-01-02', '2024-01-03']);
    assert.deepEqual(v.short, [[40, 60], [40, 50]]);
    for (const id of ['chart-ats-share', 'chart-short-ratio']) {
      assert.equal(await overlayShown(page, id), false, id);
      const box = await page.locator('#' + id).boundingBox();
      assert.ok(box && box.width > 300 && box.height > 150, `${id} is ${JSON.stringify(box)}`);
    }
    await page.screenshot({ path: join(shots, 'finra.png') });
    await page.selectOption('#finra-symbol', 'MSFT');
    await page.waitForFunction(() => window.darkpool.charts['chart-short-ratio'].data.datasets[0].data[0] === 25, null, { timeout: 10000 });
    v = await read();
    assert.deepEqual(v.byAts.UBSA, [50, 0]);
    assert.deepEqual(v.short, [[25, 50], [25, 36.364]]);
  });

  await check('the dark share series is a percentage', async () => {
    const values = await page.evaluate(() => window.darkpool.charts['chart-dark-share'].data.datasets[0].data.filter((v) => v != null));
    assert.ok(values.length > 0);
    assert.ok(values.every((v) => v >= 0 && v <= 100), 'dark share outside 0..100');
  });

  await check('the block prints table lists block trades', async () => {
    await page.click('[role="tab"][data-tab="blocks"]');
    const rows = await page.$$eval('#blocks tbody tr', (r) => r.map((x) => Array.from(x.children).map((c) => c.textContent)));
    assert.ok(rows.length > 0, 'no block prints');
    for (const r of rows) {
      const shares = Number(r[5].replace(/,/g, ''));
      const value = r[6];
      assert.ok(shares >= 10000 || /\$[\d.]+[KMB]/.test(value), `not a block: ${r}`);
    }
    await page.screenshot({ path: join(shots, 'blocks.png') });
  });

  await check('the SQL console runs a query, shows a table and downloads CSV and Parquet', async () => {
    await page.click('[role="tab"][data-tab="sql"]');
    await page.fill('#sql', 'SELECT symbol, SUM(num_trades) AS trades FROM windows GROUP BY symbol ORDER BY symbol');
    await page.click('#run');
    await page.waitForFunction(() => /rows? in/.test(document.querySelector('#sql-status').textContent), null, { timeout: 15000 });
    const header = await page.$$eval('#sql-result thead th', (t) => t.map((x) => x.textContent));
    assert.deepEqual(header, ['symbol', 'trades']);
    const rows = await page.$$eval('#sql-result tbody tr', (r) => r.length);
    assert.ok(rows >= 2, `${rows} rows`);
    const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#download-csv')]);
    assert.equal(csv.suggestedFilename(), 'darkpool-query.csv');
    const csvPath = await csv.path();
    const { readFileSync } = await import('node:fs');
    assert.match(readFileSync(csvPath, 'utf8'), /^symbol,trades\n/);
    const [parquet] = await Promise.all([page.waitForEvent('download'), page.click('#download-parquet')]);
    assert.equal(readFileSync(await parquet.path()).subarray(0, 4).toString(), 'PAR1');
    await page.screenshot({ path: join(shots, 'sql.png') });
  });

  await check('the SQL console shows a refused statement and a syntax error', async () => {
    await page.fill('#sql', 'DROP TABLE trades');
    await page.keyboard.press('Control+Enter');
    await page.waitForSelector('#sql-error:not([hidden])', { timeout: 10000 });
    assert.match(await page.textContent('#sql-error'), /refused/);
    await page.fill('#sql', 'SELEC 1');
    await page.click('#run');
    await page.waitForFunction(() => /bad_request/.test(document.querySelector('#sql-error').textContent), null, { timeout: 10000 });
  });

  await check('a live update arrives over SSE and the figures move without a reload', async () => {
    await page.click('[role="tab"][data-tab="darklit"]');
    const before = await page.evaluate(() => ({ events: window.darkpool.liveEvents, refreshes: window.darkpool.refreshes, trades: window.darkpool.data.summary.num_trades }));
    await page.waitForFunction((b) => window.darkpool.liveEvents > b.events && window.darkpool.refreshes > b.refreshes
      && window.darkpool.data.summary.num_trades > b.trades, before, { timeout: 30000 });
    assert.equal(await page.textContent('#status'), 'live');
    // Styled as live (the stylesheet has the class: its background is not left transparent).
    assert.notEqual(await page.$eval('#status', (e) => getComputedStyle(e).backgroundColor), 'rgba(0, 0, 0, 0)');
    assert.notEqual(await page.textContent('#live-events'), '0');
    // The pipeline's figures: trades landed at its commits (every 2 s here) and its watermark;
    // no Kafka lag for simulated trades.
    await page.waitForFunction(() => window.darkpool.data.pipeline.trades_landed > 0, null, { timeout: 30000 });
    await page.waitForFunction(() => /^Pipeline: [1-9][\d,]* trades landed since start · watermark \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/
      .test(document.querySelector('#pipeline').textContent), null, { timeout: 10000 });
    assert.equal(await page.isVisible('#pipeline'), true);
    assert.equal(await page.evaluate(() => window.darkpool.data.pipeline.messages_behind), null);
    await page.screenshot({ path: join(shots, 'live.png') });
  });

  await check('the Kepler.gl map JSON and CSV have the shapes kepler.gl loads', async () => {
    const map = await (await page.request.get(url + '/api/kepler/map.json')).json();
    assert.equal(map.info.app, 'kepler.gl');
    const data = map.datasets[0].data;
    const names = data.fields.map((f) => f.name);
    for (const f of ['window_start', 'latitude', 'longitude', 'total_value', 'dark_share']) assert.ok(names.includes(f), f);
    assert.ok(data.allData.length > 0);
    assert.equal(data.allData[0].length, names.length);
    assert.match(data.allData[0][names.indexOf('window_start')], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    const layer = map.config.config.visState.layers[0];
    assert.equal(layer.type, 'point');
    assert.deepEqual(layer.config.columns, { lat: 'latitude', lng: 'longitude', altitude: null });
    assert.equal(layer.visualChannels.sizeField.name, 'total_value');
    assert.equal(layer.visualChannels.colorField.name, 'dark_share');
    assert.equal(map.config.config.visState.filters[0].name[0], 'window_start');
    const csv = await page.request.get(url + '/api/heatmap_data.csv');
    assert.equal(csv.headers()['access-control-allow-origin'], '*');
    const [head, first] = (await csv.text()).split('\n');
    assert.ok(head.startsWith('window_start,window_end,symbol,venue'), head);
    assert.match(first, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,/);
    const link = await page.getAttribute('#kepler-link', 'href');
    assert.equal(link, 'https://kepler.gl/demo?mapUrl=' + encodeURIComponent(url + '/api/kepler/map.json'));
  });

  await check('an API failure shows an error banner, not a blank page', async () => {
    await page.route('**/api/dashboard*', (route) => route.fulfill({ status: 504, contentType: 'application/json', body: '{"error":"timeout","message":"the query ran past 30s"}' }));
    await page.selectOption('#symbol', { index: 1 });
    await page.waitForSelector('#banner.banner-error', { timeout: 10000 });
    assert.match(await page.textContent('#banner'), /timeout: the query ran past 30s/);
    await page.unroute('**/api/dashboard*');
  });

  await check('no page errors or failed requests', async () => {
    // The refused statement (403), the syntax error (400) and the faked timeout (504) above
    // log their failed responses; anything else is a fault.
    const unexpected = problems.filter((p) => !/status of (400|403|504)/.test(p));
    assert.deepEqual(unexpected, []);
  });

  await check('at phone width the page fits the screen and the charts stay visible', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    const phoneProblems = watch(p);
    await p.goto(url + '/', { waitUntil: 'domcontentloaded' });
    await p.waitForFunction(() => window.darkpool && window.darkpool.refreshes >= 1, null, { timeout: 20000 });
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `page is ${width}px wide at 390px`);
    const box = await p.locator('#chart-venue-value').boundingBox();
    assert.ok(box && box.width > 250 && box.width <= 390, JSON.stringify(box));
    await p.screenshot({ path: join(shots, 'phone.png'), fullPage: true });
    assert.deepEqual(phoneProblems, []);
    await phone.close();
  });

  if (emptyUrl) {
    await check('an empty lake shows what to do instead of blank charts', async () => {
      const p = await context.newPage();
      await p.goto(emptyUrl + '/', { waitUntil: 'domcontentloaded' });
      await p.waitForFunction(() => window.darkpool && window.darkpool.refreshes >= 1, null, { timeout: 20000 });
      assert.equal(await overlayShown(p, 'chart-venue-value'), true);
      assert.match(await p.textContent('.state[data-for="chart-venue-value"]'), /holds no windows/);
      // No pipeline (--no-ingest), and nothing committed to follow.
      assert.equal(await p.textContent('#pipeline'), 'Following the lake: no commit yet');
      assert.equal(await p.textContent('[data-stat="num_trades"]'), '0');
      await p.waitForFunction(() => document.querySelector('#status').textContent === 'following the lake', null, { timeout: 10000 });
      await p.screenshot({ path: join(shots, 'empty.png') });
    });
  }
  if (followerUrl) {
    await check('a server with no pipeline shows what another commits to its lake, open windows included, without a reload', async () => {
      const p = await context.newPage();
      watch(p);
      await p.goto(followerUrl + '/', { waitUntil: 'domcontentloaded' });
      await p.waitForFunction(() => document.querySelector('#status').textContent === 'following the lake', null, { timeout: 10000 });
      assert.match(await p.getAttribute('#status', 'class'), /pill-live/);
      await p.waitForFunction(() => window.darkpool.refreshes >= 1, null, { timeout: 20000 });
      const before = await p.evaluate(() => ({ refreshes: window.darkpool.refreshes, trades: window.darkpool.data.summary.num_trades }));
      // The other server commits every 2 s; each commit is an event here and a refresh.
      await p.waitForFunction((b) => window.darkpool.liveEvents > 0 && window.darkpool.refreshes > b.refreshes
        && window.darkpool.data.summary.num_trades > b.trades, before, { timeout: 30000 });
      // Its wall-clock trades are in windows still open (their 5 minutes are not over): shown.
      const open = await (await p.request.post(followerUrl + '/api/sql', {
        headers: { Accept: 'application/json' }, data: 'SELECT COUNT(*) AS n FROM live_windows WHERE NOT is_final',
      })).json();
      assert.ok(open[0].n > 0, JSON.stringify(open));
      // When the other server last committed: within the last minute.
      const footer = await p.textContent('#pipeline');
      const at = footer.match(/^Following the lake: last commit (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$/);
      assert.ok(at, footer);
      const age = Date.now() - Date.parse(at[1].replace(' ', 'T') + 'Z');
      assert.ok(age >= -2000 && age < 60000, `${footer}: ${age} ms ago`);
      await p.screenshot({ path: join(shots, 'follower.png') });
    });
  }
  if (failedUrl) {
    await check('a pipeline that stopped on an error says so, with the error', async () => {
      const p = await context.newPage();
      await p.goto(failedUrl + '/', { waitUntil: 'domcontentloaded' });
      await p.waitForFunction(() => document.querySelector('#status').textContent === 'pipeline stopped', null, { timeout: 30000 });
      const pill = await p.$eval('#status', (e) => ({ cls: e.className, title: e.title, bg: getComputedStyle(e).backgroundColor }));
      assert.match(pill.cls, /pill-error/);
      assert.match(pill.title, /No space left on device/);
      assert.notEqual(pill.bg, 'rgba(0, 0, 0, 0)');
      // And a banner, which the page's refreshes keep.
      await p.waitForFunction(() => window.darkpool.refreshes >= 1, null, { timeout: 20000 });
      assert.match(await p.textContent('#banner'), /pipeline stopped: .*No space left on device.*restart darkpool serve/);
      assert.match(await p.getAttribute('#banner', 'class'), /banner-error/);
      await p.screenshot({ path: join(shots, 'stopped.png') });
    });
  }

  if (restartingUrl) {
    await check('a pipeline waiting to start again after a full disk says so, and when', async () => {
      const p = await context.newPage();
      await p.goto(restartingUrl + '/', { waitUntil: 'domcontentloaded' });
      // Read at once: the pill turns to "live" while each try runs.
      const seen = await (await p.waitForFunction(() => {
        const pill = document.querySelector('#status');
        const banner = document.querySelector('#banner');
        return pill.textContent === 'pipeline restarting' && {
          cls: pill.className, title: pill.title, bg: getComputedStyle(pill).backgroundColor,
          banner: banner.textContent, bannerCls: banner.className,
        };
      }, null, { timeout: 30000 })).jsonValue();
      assert.match(seen.cls, /pill-wait/);
      assert.notEqual(seen.bg, 'rgba(0, 0, 0, 0)');
      assert.match(seen.title, /No space left on device/);
      assert.match(seen.banner, /pipeline failed: .*No space left on device.*starts again from the lake in \d+ s/);
      assert.match(seen.bannerCls, /banner-info/);
      await p.screenshot({ path: join(shots, 'restarting.png') });
    });
  }
} catch (e) {
  console.error(`FAILED ${step}: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
