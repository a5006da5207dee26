// Loads brief's reader pages in headless Chromium and checks what a reader sees.
// Usage: node check.mjs BASE_URL SCREENSHOT_DIR [KEYED_BASE_URL]
// KEYED_BASE_URL: a second server that requires the key `browser-test-key` and has --char-limit 300; the
// translate page there shows its key field, refuses without a key or with a wrong one, translates with the
// right one, and refuses a paragraph over the limit before sending it.
// Checks: the translate page translates typed text and an uploaded .md file paragraph by paragraph in groups
// (result beside the original, detected language, time, progress), makes a brief found on the index, shows
// errors for empty and English text, keeps HTML results as text, and stacks on a phone.
// Checks: the index lists every stored brief with its English headline; a brief page shows the headline, the
// summary and one English/Indonesian pair per paragraph; article markup shows as text and never runs; no console
// errors, no page errors, no request leaves the server (fonts, scripts, CDNs); both a desktop and a phone layout.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, shots, keyed] = process.argv.slice(2);
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
  acceptDownloads: true,
});
const consoleErrors = [];
let expectedStatus = null;
const pageErrors = [];
const outside = [];
await context.route('**/*', (route) => {
  const url = new URL(route.request().url());
  if (url.origin === new URL(base).origin || (keyed && url.origin === new URL(keyed).origin)) return route.continue();
  outside.push(url.href);
  return route.abort();
});

async function open(path, viewport, name) {
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // A refusal the check asks for is logged by Chromium as a failed load; only that one is allowed.
    if (expectedStatus && m.text().includes(`status of ${expectedStatus}`)) return;
    consoleErrors.push(`${path}: ${m.text()}`);
  });
  page.on('pageerror', (e) => pageErrors.push(`${path}: ${e.message}`));
  const response = await page.goto(path.startsWith('http') ? path : base + path, { waitUntil: 'load' });
  check(response.status() === 200, `${path} answers 200 (${name})`);
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  return page;
}

const desktop = { width: 1280, height: 900 };
const phone = { width: 390, height: 844 };

// The index: a page at a time, newest first, with links through the rest.
const all = stored;
const pageSize = 20;
const pages = Math.ceil(all.length / pageSize);
check(all.length >= 60, `the store holds ${all.length} briefs (60 made for paging)`);
const index = await open('/', desktop, 'index-desktop');
const cardIds = () => index.locator('.brief-card h2 a').evaluateAll((as) => as.map((a) => a.getAttribute('href').replace('/briefs/', '')));
const seen = [];
for (let n = 1; ; n += 1) {
  const ids = await cardIds();
  check(ids.length === Math.min(pageSize, all.length - seen.length), `page ${n}: ${ids.length} briefs`);
  check((await index.locator('#count').innerText()).includes(`page ${n} of ${pages}`), `page ${n}: "page ${n} of ${pages}"`);
  seen.push(...ids);
  const older = index.locator('nav.pager a[rel="next"]');
  if (!(await older.count())) break;
  await older.click();
  await index.waitForLoadState('load');
  check(new URL(index.url()).searchParams.get('page') === String(n + 1), `"Older" leads to the stable address ?page=${n + 1}`);
}
check(JSON.stringify(seen) === JSON.stringify(all.map((b) => b.id)), `paging through ${pages} pages shows every brief once, in the list's order`);
await index.screenshot({ path: join(shots, 'index-last-page.png'), fullPage: true });
await index.click('nav.pager a[rel="prev"]');
await index.waitForLoadState('load');
check(new URL(index.url()).searchParams.get('page') === String(pages - 1), `"Newer" goes back to page ${pages - 1}`);

// Search: a word of the English that is in the fewest briefs finds exactly those.
const words = (s) => s.toLowerCase().match(/[a-z0-9]+/g) || [];
const english = new Map();
for (const b of all) {
  const full = await api(`/v1/briefs/${b.id}`);
  english.set(b.id, new Set(words([full.headline.english, full.summary, ...full.paragraphs.map((p) => p.english)].join(' '))));
}
const counts = new Map();
for (const set of english.values()) for (const w of set) counts.set(w, (counts.get(w) || 0) + 1);
const [word, inBriefs] = [...counts].filter(([w]) => w.length >= 3).sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))[0];
const expected = all.filter((b) => english.get(b.id).has(word)).map((b) => b.id);
await index.fill('form.filters input[name="q"]', word);
await index.click('form.filters button[type="submit"]');
await index.waitForLoadState('load');
check(new URL(index.url()).searchParams.get('q') === word, `the search has a stable address (?q=${word})`);
const found = await cardIds();
check(JSON.stringify(found) === JSON.stringify(expected.slice(0, pageSize)),
  `searching "${word}" (in ${inBriefs} brief${inBriefs === 1 ? '' : 's'}' English) finds exactly ${inBriefs === 1 ? 'that one' : 'those'} (${found.length})`);
await index.screenshot({ path: join(shots, 'index-search.png'), fullPage: true });
await index.goto(`${base}/?q=zzqxjwv`, { waitUntil: 'load' });
check((await index.locator('#no-match').innerText()).includes('No brief matches'), 'a search that finds nothing says so');

// Filters: an outlet, and one day of publication.
await index.goto(`${base}/`, { waitUntil: 'load' });
await index.selectOption('form.filters select[name="outlet"]', 'Kompas');
await index.click('form.filters button[type="submit"]');
await index.waitForLoadState('load');
const kompas = all.filter((b) => b.outlet === 'Kompas').map((b) => b.id);
const kompasShown = await cardIds();
const outlets = await index.locator('.brief-card .outlet').allInnerTexts();
check(kompasShown.length === Math.min(pageSize, kompas.length) && outlets.every((o) => o === 'Kompas') &&
  JSON.stringify(kompasShown) === JSON.stringify(kompas.slice(0, pageSize)), `the outlet filter shows the ${kompas.length} Kompas briefs`);
await index.goto(`${base}/`, { waitUntil: 'load' });
await index.fill('form.filters input[name="from"]', '2024-05-03');
await index.fill('form.filters input[name="to"]', '2024-05-03');
await index.click('form.filters button[type="submit"]');
await index.waitForLoadState('load');
const onDay = all.filter((b) => (b.published_at || '').startsWith('2024-05-03')).map((b) => b.id);
check(onDay.length > 0 && JSON.stringify(await cardIds()) === JSON.stringify(onDay), `the date filter shows the ${onDay.length} briefs published on 2024-05-03`);
expectedStatus = 400;
const badDate = await index.goto(`${base}/?from=2024-13-01`, { waitUntil: 'load' });
check(badDate.status() === 400 && (await index.locator('main').innerText()).includes('from'), 'a malformed date is a 400 page that names the parameter');
expectedStatus = null;

// The feed: linked from every page's head and header, and served.
const feedLink = await index.locator('head link[rel="alternate"][type="application/atom+xml"]').getAttribute('href');
check(feedLink === '/feed.atom', `each page links the feed for feed readers (${feedLink})`);
check(await index.locator('header.site a[href="/feed.atom"]').count() === 1, 'the header has a Feed link');
const feedResponse = await fetch(base + feedLink);
const feedXml = await feedResponse.text();
check(feedResponse.status === 200 && feedResponse.headers.get('content-type').startsWith('application/atom+xml') &&
  feedXml.includes(`urn:brief:${all[0].id}`), 'the feed answers with the newest brief');

const indexPhone = await open('/', phone, 'index-phone');
const overflow = await indexPhone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
check(overflow <= 0, `no horizontal scrolling on a phone (overflow ${overflow}px)`);

// A brief page of a seed (made by the batch: it has left-out lines), reached by clicking, as a reader would.
const seedBriefs = [];
for (const b of all.filter((b) => /^\d{3}_[0-9a-f]+\.txt$/.test(b.name))) seedBriefs.push(await api(`/v1/briefs/${b.id}`));
const brief = seedBriefs.find((b) => b.dropped && b.dropped.length) || seedBriefs[0];
const first = brief;
await index.goto(`${base}/briefs/${brief.id}`, { waitUntil: 'load' });
await index.screenshot({ path: join(shots, 'brief-desktop.png'), fullPage: true });
check((await index.locator('h1#headline').innerText()).trim() === brief.headline.english.trim(), 'the brief page shows the English headline');
check((await index.locator('#summary').innerText()).trim() === brief.summary.trim(), 'the brief page shows the summary on top');
const pairs = await index.locator('.pair').count();
check(pairs === brief.paragraphs.length, `the brief page shows ${pairs} paragraphs (the brief has ${brief.paragraphs.length})`);
check(!(await index.locator('.pair .source').first().isVisible()) && await index.locator('.pair .english').first().isVisible(),
  'the English comes first; the Indonesian is not shown until asked for');
await index.click('label[for="show-original"]');
const firstSource = index.locator('.pair .source').first();
check(await firstSource.isVisible() && (await firstSource.innerText()).trim() === brief.paragraphs[0].source.trim(), 'one click shows the original Indonesian');
const columns = await index.evaluate(() => getComputedStyle(document.querySelector('.pair')).gridTemplateColumns.split(' ').length);
check(columns === 2, `beside the English on a desktop (${columns} columns)`);
await index.screenshot({ path: join(shots, 'brief-desktop-original.png'), fullPage: true });
const leftOut = (await index.locator('#left-out li').allInnerTexts()).map((t) => t.trim());
check(brief.dropped.length > 0 && leftOut.length === brief.dropped.length &&
  brief.dropped.every((d, i) => leftOut[i].startsWith(d.text.trim()) && leftOut[i].endsWith(d.rule)),
  `the ${brief.dropped.length} left-out lines are shown, with their rules`);
const note = await index.locator('#summary-note').count();
check(note === (brief.summary_method.chunks_per_round[0] > 1 ? 1 : 0), `the summary says it was made from parts exactly when it was (${brief.summary_method.chunks_per_round})`);
const madeBy = await index.locator('#made-by').innerText();
check(madeBy.includes(brief.models.translate.id) && madeBy.includes(brief.models.summarize.id), 'the page says which models made it');
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
await index.click('#copy-link');
await index.waitForFunction(() => document.querySelector('#copy-status').textContent !== '');
const copied = await index.evaluate(() => navigator.clipboard.readText());
check((await index.locator('#copy-status').innerText()) === 'Link copied.' && copied === `${base}/briefs/${brief.id}`, `"Copy link" copies the page's address (${copied})`);
for (const [link, ext, start] of [['#download-md', 'md', '# '], ['#download-txt', 'txt', '']]) {
  const [download] = await Promise.all([index.waitForEvent('download'), index.click(link)]);
  const body = readFileSync(await download.path(), 'utf8');
  check(download.suggestedFilename() === `brief-${brief.id}.${ext}` && body.startsWith(start) && body.includes(brief.summary.trim()),
    `the ${ext} download is the brief (${download.suggestedFilename()})`);
}
const briefPhone = await open(`/briefs/${first.id}`, phone, 'brief-phone');
check(!(await briefPhone.locator('.pair .source').first().isVisible()), 'on a phone too, the Indonesian waits for a click');
await briefPhone.click('label[for="show-original"]');
const phoneColumns = await briefPhone.evaluate(() => getComputedStyle(document.querySelector('.pair')).gridTemplateColumns.split(' ').length);
check(phoneColumns === 1, `under the English on a phone (${phoneColumns} column)`);
const phoneOverflow = await briefPhone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
check(phoneOverflow <= 0, `brief page: no horizontal scrolling on a phone (overflow ${phoneOverflow}px)`);
await briefPhone.screenshot({ path: join(shots, 'brief-phone-original.png'), fullPage: true });

// A brief with its outlet, date and original address shows them.
const withMeta = all.find((b) => b.outlet === 'Tempo');
const metaPage = await open(`/briefs/${withMeta.id}`, desktop, 'brief-with-metadata');
check((await metaPage.locator('#outlet').innerText()) === 'Tempo' && (await metaPage.locator('#original-link').getAttribute('href')).startsWith('https://news.example/berita/'),
  'the outlet and the link to the original are shown');

// Markup in an article is text, and never runs.
const hostile = stored.find((b) => b.name.includes('<'));
if (hostile) {
  const page = await open(`/briefs/${hostile.id}`, desktop, 'brief-hostile');
  const ran = await page.evaluate(() => window.__brief_pwned === true);
  check(!ran, 'a <script> in an article does not run');
  await page.click('label[for="show-original"]');
  const text = await page.locator('.original').innerText();
  check(text.includes('<script>'), 'a <script> in an article shows as text');
}

// The translate page, reached from the reader's header.
const articleParagraphs = [
  'Harga beras di pasar tradisional Jakarta naik lagi pada pekan ini.',
  'Pedagang mengatakan pasokan dari daerah berkurang karena musim hujan.',
  'Pemerintah berjanji akan menambah stok beras di gudang Bulog.',
  'Menteri perdagangan meminta masyarakat tidak panik membeli beras.',
  'Harga cabai dan bawang merah juga naik di beberapa kota.',
  'Bank Indonesia memperkirakan inflasi bulan ini tetap terkendali.',
];
const article = articleParagraphs.join('\n\n');
const v1 = async (texts) => (await (await fetch(base + '/v1/translate', {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ texts }),
})).json()).translations.map((t) => t.text);

const tr = await open('/', desktop, 'index-with-nav');
await tr.click('header.site a[href="/translate"]');
await tr.waitForLoadState('load');
check(new URL(tr.url()).pathname === '/translate', 'the reader header links to the translate page');
const translateCalls = [];
tr.on('request', (r) => { if (new URL(r.url()).pathname === '/v1/translate') translateCalls.push(r.postDataJSON()); });
const alertText = async () => ((await tr.locator('#alert').isVisible()) ? (await tr.locator('#alert').innerText()).trim() : '');

// Empty text: refused in the page, before any request.
await tr.click('#translate');
check((await alertText()).includes('nothing to translate'), `empty text: an error in the alert region ("${await alertText()}")`);
check(translateCalls.length === 0, 'empty text sends no request');

// Typed Indonesian: two groups of at most 4 paragraphs, filled as they return.
await tr.fill('#text', article);
check(await tr.locator('#format-text').isChecked(), 'plain text is sent as text');
await tr.click('#translate');
await tr.locator('#timing').waitFor({ state: 'visible', timeout: 120000 });
check((await alertText()) === '', 'no error for Indonesian text');
const pairsShown = await tr.locator('#pairs .pair').count();
check(pairsShown === articleParagraphs.length, `${pairsShown} paragraph pairs (the text has ${articleParagraphs.length})`);
const sources = (await tr.locator('#pairs .pair .source').allInnerTexts()).map((t) => t.trim());
check(JSON.stringify(sources) === JSON.stringify(articleParagraphs), 'each original paragraph stands in its row');
const englishShown = (await tr.locator('#pairs .pair .english').allInnerTexts()).map((t) => t.trim());
const englishApi = (await v1(articleParagraphs)).map((t) => t.trim());
check(JSON.stringify(englishShown) === JSON.stringify(englishApi), 'each English paragraph is the API\'s translation of its original');
check(await tr.locator('#pairs .english.pending').count() === 0, 'no paragraph is left waiting');
check(translateCalls.length === 2 && translateCalls.every((c) => c.texts.length <= 4), `sent in groups of at most 4 (${translateCalls.map((c) => c.texts.length)})`);
const detected = await tr.locator('#detected').innerText();
check((await tr.locator('#detected').getAttribute('data-language')) === 'id' && detected.includes('id'), `detected language shown: "${detected}"`);
const timing = await tr.locator('#timing').innerText();
check(/in \d+(\.\d)? s/.test(timing), `time taken shown: "${timing}"`);
const progressText = await tr.locator('#progress-text').innerText();
check(progressText === `${articleParagraphs.length} of ${articleParagraphs.length} paragraphs`, `progress shown: "${progressText}"`);
const trColumns = await tr.evaluate(() => getComputedStyle(document.querySelector('#pairs .pair')).gridTemplateColumns.split(' ').length);
check(trColumns === 2, `translation beside the original on a desktop (${trColumns} columns)`);
await tr.screenshot({ path: join(shots, 'translate-desktop.png'), fullPage: true });

// English text: the server's own refusal, shown in the page.
expectedStatus = 400;
await tr.fill('#text', 'The government announced on Monday that the price of rice will rise again next week. ' +
  'The minister said that the supply from the regions has fallen because of the rainy season, and that there is no reason to panic.');
await tr.click('#translate');
await tr.waitForFunction(() => !document.querySelector('#alert').hidden, null, { timeout: 60000 });
const refused = await alertText();
check(refused.includes('400') && refused.includes('is not supported'), `English text: the server's message shown ("${refused}")`);
await tr.waitForFunction(() => !document.querySelector('#translate').disabled);
expectedStatus = null;

// HTML is picked by itself, and its results show as text; markup in it never runs.
await tr.fill('#text', '<p>Harga <b>beras</b> naik.</p><p>Stok <img src="/nothing.png" onerror="window.__brief_pwned = true"> aman.</p>');
check(await tr.locator('#format-html').isChecked(), 'text that looks like HTML switches the format to HTML');
await tr.click('#translate');
await tr.locator('#timing').waitFor({ state: 'visible', timeout: 60000 });
check(await tr.locator('#pairs pre.html-result').count() === 2, 'HTML results show as source text, one per paragraph');
check(await tr.evaluate(() => window.__brief_pwned !== true && !document.querySelector('#pairs img')), 'markup in pasted HTML does not run or render');

// An uploaded .md file, then a brief of it, found on the reader's index.
const mdName = `pasar-${Date.now()}.md`;
const md = '# Harga Beras Naik Lagi di Jakarta\n\n' + articleParagraphs.slice(0, 3).join('\n\n') + '\n';
await tr.setInputFiles('#file', { name: mdName, mimeType: 'text/markdown', buffer: Buffer.from(md) });
await tr.waitForFunction(() => !document.querySelector('#file-status').hidden);
check((await tr.inputValue('#text')) === md, 'the .md file is read into the text box');
check(await tr.locator('#format-text').isChecked(), 'a .md file is sent as text');
await tr.click('#translate');
await tr.locator('#timing').waitFor({ state: 'visible', timeout: 60000 });
check(await tr.locator('#pairs .pair').count() === 4, 'the file is translated paragraph by paragraph (4 rows)');
await tr.click('#make-brief');
await tr.locator('#brief-link').waitFor({ state: 'visible', timeout: 180000 });
const briefHref = await tr.locator('#brief-link').getAttribute('href');
check(/^\/briefs\/[0-9a-f]+$/.test(briefHref), `the page links to the new brief (${briefHref})`);
await tr.screenshot({ path: join(shots, 'translate-brief.png'), fullPage: true });
await tr.goto(base + '/', { waitUntil: 'load' });
const newCard = tr.locator('.brief-card', { has: tr.locator(`a[href="${briefHref}"]`) });
check(await newCard.count() === 1, 'the reader\'s index lists the new brief');
check((await newCard.innerText()).includes(mdName), 'under the uploaded file\'s name');
await tr.click(`a[href="${briefHref}"]`);
await tr.waitForLoadState('load');
const made = await api(briefHref.replace('/briefs/', '/v1/briefs/'));
check((await tr.locator('h1#headline').innerText()).trim() === made.headline.english.trim() &&
  await tr.locator('.pair').count() === made.paragraphs.length, `the brief opens in the reader (${made.paragraphs.length} paragraphs)`);

// A phone: stacked, nothing wider than the screen.
const trPhone = await open('/translate', phone, 'translate-phone-empty');
await trPhone.fill('#text', article);
await trPhone.click('#translate');
await trPhone.locator('#timing').waitFor({ state: 'visible', timeout: 120000 });
const trOverflow = await trPhone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
check(trOverflow <= 0, `translate page: no horizontal scrolling on a phone (overflow ${trOverflow}px)`);
const trPhoneColumns = await trPhone.evaluate(() => getComputedStyle(document.querySelector('#pairs .pair')).gridTemplateColumns.split(' ').length);
check(trPhoneColumns === 1, `translate page: stacked on a phone (${trPhoneColumns} column)`);
await trPhone.screenshot({ path: join(shots, 'translate-phone.png'), fullPage: true });

if (keyed) {
  // A server with keys and a character limit: the key field, and both checks before anything is sent.
  const kp = await open(keyed + '/translate', desktop, 'translate-keyed');
  const calls = [];
  kp.on('request', (r) => { if (new URL(r.url()).pathname === '/v1/translate') calls.push(r.headers().authorization); });
  const kAlert = async () => ((await kp.locator('#alert').isVisible()) ? (await kp.locator('#alert').innerText()).trim() : '');
  await kp.locator('#key-row').waitFor({ state: 'visible', timeout: 10000 });
  check(await kp.locator('#key').getAttribute('type') === 'password', 'keyed server: the API key field is shown, as a password');
  await kp.fill('#text', articleParagraphs.slice(0, 2).join('\n\n'));
  await kp.click('#translate');
  check((await kAlert()).includes('needs an API key') && calls.length === 0, `keyed server: no key, refused in the page ("${await kAlert()}")`);
  expectedStatus = 403;
  await kp.fill('#key', 'not-the-key');
  await kp.click('#translate');
  await kp.waitForFunction(() => !document.querySelector('#alert').hidden && !document.querySelector('#translate').disabled, null, { timeout: 60000 });
  const wrong = await kAlert();
  check(wrong.includes('403') && wrong.includes('Invalid API key') && wrong.includes('check the API key'), `keyed server: a wrong key, the server's refusal shown ("${wrong}")`);
  expectedStatus = null;
  await kp.fill('#key', 'browser-test-key');
  await kp.click('#translate');
  await kp.locator('#timing').waitFor({ state: 'visible', timeout: 60000 });
  check((await kAlert()) === '' && await kp.locator('#pairs .pair').count() === 2, 'keyed server: the right key translates (2 rows)');
  check(calls.at(-1) === 'Bearer browser-test-key', `keyed server: the key is sent as a bearer token (${calls.at(-1)})`);
  const before = calls.length;
  const long = 'Harga beras naik lagi di pasar tradisional Jakarta pada pekan ini. '.repeat(6).trim();
  await kp.fill('#text', `${articleParagraphs[0]}\n\n${long}`);
  await kp.click('#translate');
  const over = await kAlert();
  check(over.includes(`Paragraph 2 has ${[...long].length} characters`) && over.includes('at most 300') && calls.length === before,
    `keyed server: a paragraph over --char-limit, refused in the page ("${over}")`);
  await kp.screenshot({ path: join(shots, 'translate-keyed-limit.png'), fullPage: true });
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
