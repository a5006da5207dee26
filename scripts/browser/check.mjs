// Loads brief's reader pages in headless Chromium and checks what a reader sees.
// Usage: node check.mjs BASE_URL SCREENSHOT_DIR
// Checks: the index lists every stored brief with its English headline; a brief page shows the headline, the
// summary and one English/Indonesian pair per paragraph; article markup shows as text and never runs; no console
// errors, no page errors, no request leaves the server (fonts, scripts, CDNs); both a desktop and a phone layout.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node check.mjs BASE_URL SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};

const api = async (path) => (await fetch(base + path)).json();
const stored = (await api('/v1/briefs')).briefs;
check(stored.length >= 2, `the store holds ${stored.length} briefs`);

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'brief-chromium-')), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-quic'],
});
const consoleErrors = [];
const pageErrors = [];
const outside = [];
await context.route('**/*', (route) => {
  const url = new URL(route.request().url());
  if (url.origin === new URL(base).origin) return route.continue();
  outside.push(url.href);
  return route.abort();
});

async function open(path, viewport, name) {
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${path}: ${m.text()}`); });
  page.on('pageerror', (e) => pageErrors.push(`${path}: ${e.message}`));
  const response = await page.goto(base + path, { waitUntil: 'load' });
  check(response.status() === 200, `${path} answers 200 (${name})`);
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  return page;
}

const desktop = { width: 1280, height: 900 };
const phone = { width: 390, height: 844 };

// The index.
const index = await open('/', desktop, 'index-desktop');
const cards = await index.locator('.brief-card').count();
check(cards === stored.length, `the index shows ${cards} briefs (the store has ${stored.length})`);
const headlines = await index.locator('.brief-card h2').allInnerTexts();
for (const b of stored) {
  check(headlines.includes(b.headline.trim()), `the index shows the headline of ${b.name}`);
}
const indexPhone = await open('/', phone, 'index-phone');
const overflow = await indexPhone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
check(overflow <= 0, `no horizontal scrolling on a phone (overflow ${overflow}px)`);

// A brief page, reached by clicking, as a reader would.
const first = stored.find((b) => !b.name.includes('<')) || stored[0];
await index.click(`a[href="/briefs/${first.id}"]`);
await index.waitForLoadState('load');
await index.screenshot({ path: join(shots, 'brief-desktop.png'), fullPage: true });
const brief = await api(`/v1/briefs/${first.id}`);
check((await index.locator('h1#headline').innerText()).trim() === brief.headline.english.trim(), 'the brief page shows the English headline');
check((await index.locator('#summary').innerText()).trim() === brief.summary.trim(), 'the brief page shows the summary on top');
const pairs = await index.locator('.pair').count();
check(pairs === brief.paragraphs.length, `the brief page shows ${pairs} paragraph pairs (the brief has ${brief.paragraphs.length})`);
const firstSource = (await index.locator('.pair .source').first().innerText()).trim();
check(firstSource === brief.paragraphs[0].source.trim(), 'the original Indonesian stands beside the English');
const columns = await index.evaluate(() => getComputedStyle(document.querySelector('.pair')).gridTemplateColumns.split(' ').length);
check(columns === 2, `side by side on a desktop (${columns} columns)`);
const briefPhone = await open(`/briefs/${first.id}`, phone, 'brief-phone');
const phoneColumns = await briefPhone.evaluate(() => getComputedStyle(document.querySelector('.pair')).gridTemplateColumns.split(' ').length);
check(phoneColumns === 1, `stacked on a phone (${phoneColumns} column)`);

// Markup in an article is text, and never runs.
const hostile = stored.find((b) => b.name.includes('<'));
if (hostile) {
  const page = await open(`/briefs/${hostile.id}`, desktop, 'brief-hostile');
  const ran = await page.evaluate(() => window.__brief_pwned === true);
  check(!ran, 'a <script> in an article does not run');
  const text = await page.locator('.original').innerText();
  check(text.includes('<script>'), 'a <script> in an article shows as text');
}

check(consoleErrors.length === 0, `no console errors ${JSON.stringify(consoleErrors)}`);
check(pageErrors.length === 0, `no page errors ${JSON.stringify(pageErrors)}`);
check(outside.length === 0, `no requests beyond the server ${JSON.stringify(outside)}`);
await context.close();
if (failures.length) {
  console.error(`${failures.length} browser check(s) failed`);
  process.exit(1);
}
console.log(`browser checks passed; screenshots in ${shots}`);
