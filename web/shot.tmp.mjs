import { chromium } from 'playwright-core';
const [url, out, tab] = process.argv.slice(2);
const b = await chromium.launch({executablePath:'/usr/bin/chromium', args:['--headless','--no-sandbox','--disable-gpu','--disable-background-networking']});
const p = await b.newPage({viewport:{width:1280,height:1000}});
await p.goto(url + '/#' + (tab || 'overview'));
await p.waitForFunction(() => window.darkpool && window.darkpool.refreshes >= 1);
await p.waitForTimeout(1500);
await p.screenshot({path: out});
await b.close();
