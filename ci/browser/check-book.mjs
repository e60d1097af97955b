// Load every page of the built book in Debian's Chromium, with the network blocked except for
// the local server, and check what a reader sees. Usage:
//   node check-book.mjs <built-book-dir> <SUMMARY.md> <output-dir>
// Writes a screenshot of every figure as a reader sees it, in the light theme (1280-px window)
// and the navy theme (1024-px window), under <output-dir>/figures/<theme>/, and the list of
// external links, to <output-dir>.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [bookDir, summaryPath, outDir] = process.argv.slice(2);
if (!bookDir || !summaryPath || !outDir) {
  console.error('usage: node check-book.mjs <built-book-dir> <SUMMARY.md> <output-dir>');
  process.exit(2);
}
const shotsDir = path.join(outDir, 'figures');
fs.rmSync(outDir, { recursive: true, force: true });
for (const theme of ['light', 'navy']) fs.mkdirSync(path.join(shotsDir, theme), { recursive: true });

// Every figure on the page, one PNG each: <page>-<n>.png, n counting from 1 in page order.
async function shootFigures(tab, page, theme) {
  // Figures folded into <details> are shot too (opened, as printing opens them).
  await tab.evaluate(() => document.querySelectorAll('main details').forEach((d) => { d.open = true; }));
  // mdBook wraps each image in a click-to-zoom label with a second, hidden copy
  // (inside .img-wrapper): shoot the image the reader sees, not the copy.
  const imgs = tab.locator('main :not(.img-wrapper) > img');
  const n = await imgs.count();
  const stem = page.replace(/[\/]/g, '_').replace(/\.html$/, '');
  for (let i = 0; i < n; i++) {
    const img = imgs.nth(i);
    if (!(await img.isVisible())) {
      problems.push(`${page} (${theme}): figure ${i + 1} (${await img.getAttribute('src')}) is not visible`);
      continue;
    }
    await img.scrollIntoViewIfNeeded();
    const file = `${stem}-${String(i + 1).padStart(2, '0')}.png`;
    await img.screenshot({ path: path.join(shotsDir, theme, file) });
  }
}

// Pages in reading order, from SUMMARY.md.
const pages = [...fs.readFileSync(summaryPath, 'utf8').matchAll(/\]\(([^)]+\.md)\)/g)]
  .map((m) => m[1].replace(/\.md$/, '.html'));

// A static file server for the built book, on a free loopback port.
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.woff2': 'font/woff2', '.woff': 'font/woff', '.ttf': 'font/ttf', '.json': 'application/json',
  '.ico': 'image/x-icon', '.txt': 'text/plain' };
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  let file = path.join(bookDir, decodeURIComponent(url.pathname));
  if (!file.startsWith(path.resolve(bookDir))) { res.writeHead(403); res.end(); return; }
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
  if (!fs.existsSync(file)) { res.writeHead(404); res.end('not found'); return; }
  res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--no-first-run', '--disable-sync', '--disable-quic'],
  // playwright-core gives every launch a fresh, empty user-data directory of its own.
});
const problems = [];
const external = new Set();
const idsByPage = new Map();
const linksToCheck = [];

// Nothing may be wider than the text column: every table (measured itself, not mdBook's scrolling
// .table-wrapper around it) and every display formula (one that scrolls or clips has
// scrollWidth > clientWidth). Closed <details> are opened first so that their contents have a size.
// Measured in each of these windows; the first is the one every other check runs in.
const layouts = [
  { width: 1280, height: 900, theme: 'light' }, // a laptop: sidebar open, the 750-px column
  { width: 1024, height: 768, theme: 'navy' }, // sidebar folded away, the dark theme
];
function measureWidths() {
  const main = document.querySelector('main');
  for (const d of main.querySelectorAll('details')) d.open = true;
  const cs = getComputedStyle(main);
  const column = main.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  const wide = [];
  for (const t of main.querySelectorAll('table')) {
    const width = Math.max(t.scrollWidth, t.getBoundingClientRect().width);
    const box = t.closest('.table-wrapper') || t.parentElement;
    const room = Math.min(column, box.clientWidth);
    if (width > room + 1) {
      const heads = [...t.querySelectorAll('th')].slice(0, 3).map((c) => c.textContent.trim().slice(0, 30));
      wide.push(`table [${heads.join(' | ')}] is ${Math.round(width)} px wide, the column ${Math.round(room)} px`);
    }
  }
  for (const m of main.querySelectorAll('math[display="block"]')) {
    const width = Math.max(m.scrollWidth, m.getBoundingClientRect().width);
    if (m.scrollWidth > m.clientWidth + 1 || width > column + 1) {
      const tex = m.querySelector('annotation[encoding="application/x-tex"]');
      const what = (tex ? tex.textContent : m.textContent).trim().replace(/\s+/g, ' ').slice(0, 60);
      wide.push(`display formula "${what}" needs ${Math.round(m.scrollWidth)} px, has ${Math.round(Math.min(m.clientWidth, column))} px`);
    }
  }
  return wide;
}
async function checkWidths(tab, where, layout) {
  await tab.evaluate(() => document.fonts.ready);
  for (const w of await tab.evaluate(measureWidths)) {
    problems.push(`${where} (${layout.width}-px window, ${layout.theme}): ${w}`);
  }
}
// mdBook keeps the reader's theme in localStorage; every tab starts in the layout's theme.
async function newContext(layout) {
  const ctx = await browser.newContext({ viewport: { width: layout.width, height: layout.height } });
  await ctx.addInitScript((theme) => localStorage.setItem('mdbook-theme', theme), layout.theme);
  // Only the local server may be reached; anything else is blocked and counted as a problem.
  await ctx.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith(origin) || u.startsWith('data:')) return route.continue();
    problems.push(`blocked network request to ${u}`);
    return route.abort();
  });
  return ctx;
}

const context = await newContext(layouts[0]);

for (const page of pages) {
  const tab = await context.newPage();
  const where = page;
  tab.on('console', (m) => { if (m.type() === 'error') problems.push(`${where}: console error: ${m.text()}`); });
  tab.on('pageerror', (e) => problems.push(`${where}: page error: ${e.message}`));
  tab.on('requestfailed', (r) => { if (r.url().startsWith(origin)) problems.push(`${where}: failed request ${r.url()}`); });
  tab.on('response', (r) => { if (r.status() >= 400) problems.push(`${where}: HTTP ${r.status()} for ${r.url()}`); });
  const resp = await tab.goto(`${origin}/${page}`, { waitUntil: 'load' });
  if (!resp || resp.status() !== 200) { problems.push(`${where}: did not load`); continue; }
  const report = await tab.evaluate(() => {
    const main = document.querySelector('main');
    const out = { images: [], emptyCode: 0, rawDirective: false, rawTex: [], maths: 0, flatMaths: 0, entityMaths: [], ids: [], links: [] };
    for (const img of main.querySelectorAll('img')) {
      out.images.push({ src: img.getAttribute('src'), ok: img.complete && img.naturalWidth > 0 && img.naturalHeight > 0 });
    }
    for (const code of main.querySelectorAll('pre code')) if (!code.textContent.trim()) out.emptyCode++;
    // Visible text outside code: no directive and no TeX may survive.
    const clone = main.cloneNode(true);
    for (const el of clone.querySelectorAll('pre, code, math, script, style')) el.remove();
    const text = clone.textContent;
    out.rawDirective = text.includes('{{#');
    out.rawTex = (text.match(/\$\$|\\(frac|sum|prod|operatorname|mathrm|left|right|binom|le|ge|top)\b/g) || []).slice(0, 5);
    for (const m of main.querySelectorAll('math')) {
      out.maths++;
      // An entity the TeX conversion escaped twice shows as its own text (`\ ` became `&nbsp;`).
      const shown = [...m.querySelectorAll('mtext, mi, mo, mn')].map((e) => e.textContent).join('');
      if (/&[a-z]+;|&#\d+;/.test(shown)) out.entityMaths.push(shown.slice(0, 40));
      const r = m.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) out.flatMaths++;
    }
    out.ids = [...document.querySelectorAll('[id]')].map((e) => e.id);
    out.links = [...main.querySelectorAll('a[href]')].map((a) => a.getAttribute('href'));
    return out;
  });
  for (const img of report.images) if (!img.ok) problems.push(`${where}: figure ${img.src} did not load`);
  if (report.emptyCode) problems.push(`${where}: ${report.emptyCode} empty code block(s)`);
  if (report.rawDirective) problems.push(`${where}: raw {{# directive text`);
  if (report.rawTex.length) problems.push(`${where}: raw TeX in the text: ${report.rawTex.join(' ')}`);
  for (const t of report.entityMaths) problems.push(`${where}: a formula shows entity text: ${t}`);
  if (report.flatMaths) problems.push(`${where}: ${report.flatMaths} of ${report.maths} formulas have no size`);
  await checkWidths(tab, where, layouts[0]);
  idsByPage.set(page, new Set(report.ids));
  for (const href of report.links) {
    if (/^[a-z]+:/i.test(href)) { if (!href.startsWith(origin)) external.add(href); continue; }
    linksToCheck.push({ from: page, href });
  }
  await shootFigures(tab, page, layouts[0].theme);
  await tab.close();
}

// The other windows: only the widths.
for (const layout of layouts.slice(1)) {
  const ctx = await newContext(layout);
  for (const page of pages) {
    const tab = await ctx.newPage();
    const resp = await tab.goto(`${origin}/${page}`, { waitUntil: 'load' });
    if (resp && resp.status() === 200) {
      await checkWidths(tab, page, layout);
      await shootFigures(tab, page, layout.theme);
    }
    await tab.close();
  }
  await ctx.close();
}

// Internal links: the target must exist, and a #fragment must name an element on that page.
for (const { from, href } of linksToCheck) {
  const url = new URL(href, `${origin}/${from}`);
  const target = url.pathname.replace(/^\//, '') || 'index.html';
  const frag = decodeURIComponent(url.hash.replace(/^#/, ''));
  let ids = idsByPage.get(target);
  if (!ids) {
    const file = path.join(bookDir, decodeURIComponent(target));
    if (!fs.existsSync(file)) { problems.push(`${from}: broken link ${href}`); continue; }
    if (frag && target.endsWith('.html')) {
      const html = fs.readFileSync(file, 'utf8');
      ids = new Set([...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]));
    }
  }
  if (frag && ids && !ids.has(frag)) problems.push(`${from}: link ${href} points to a missing anchor`);
}

// Search: asking for "KV cache" must find the chapter on the KV cache.
{
  const tab = await context.newPage();
  await tab.goto(`${origin}/index.html`, { waitUntil: 'load' });
  await tab.click('#mdbook-search-toggle');
  // mdBook's searcher reacts to key presses, so type the query rather than fill the field.
  await tab.locator('#mdbook-searchbar').pressSequentially('KV cache', { delay: 20 });
  await tab.waitForFunction(() => document.querySelectorAll('#mdbook-searchresults a').length > 0, null, { timeout: 10000 })
    .catch(() => {});
  const hits = await tab.$$eval('#mdbook-searchresults a', (as) => as.map((a) => a.getAttribute('href')));
  const kvPage = pages.find((p) => /kv-cache/.test(p));
  if (!kvPage) problems.push('no chapter on the KV cache is in SUMMARY.md yet');
  else if (!hits.some((h) => h.startsWith(kvPage))) problems.push(`search for "KV cache" did not find ${kvPage} (got ${hits.slice(0, 5).join(', ')})`);
  await tab.close();
}

await browser.close();
server.close();
fs.writeFileSync(path.join(outDir, 'external-links.txt'), [...external].sort().join('\n') + '\n');
const shots = ['light', 'navy'].map((t) => fs.readdirSync(path.join(shotsDir, t)).length);
if (shots[0] !== shots[1]) problems.push(`${shots[0]} figures shot in the light theme but ${shots[1]} in navy`);
if (problems.length) {
  const unique = [...new Set(problems)];
  console.error(`browser check: ${unique.length} problem(s):\n  ` + unique.join('\n  '));
  process.exit(1);
}
console.log(`browser check: ${pages.length} pages OK, ${linksToCheck.length} internal links OK, ` +
  `${external.size} external links listed; figures as a reader sees them: ${shots[0]} light and ` +
  `${shots[1]} navy screenshots in ${shotsDir}`);
