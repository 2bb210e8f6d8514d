// Shared helpers for browser scenarios run by internal/testutil/browser
// (Go: browser.Run). A scenario is a CommonJS file here:
//
//   const b = require('./lib');
//   b.scenario(async (s) => {
//     const page = await s.newPage();
//     await page.goto(process.env.URL);
//     s.check('title shown', (await page.title()) === 'x', 'detail');
//     await s.screenshot(page, 'home');
//   });
//
// stdout carries one JSON document, the result; console.log goes to
// stderr so a scenario's logging cannot corrupt it.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const out = process.stdout.write.bind(process.stdout);
console.log = (...a) => process.stderr.write(a.map(String).join(' ') + '\n');

const ARGS = ['--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

// launch starts Debian's chromium (OSTIARY_CHROMIUM, else /usr/bin/chromium)
// with a fresh profile; never a browser playwright would download.
async function launch() {
  const exe = process.env.OSTIARY_CHROMIUM || '/usr/bin/chromium';
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ostiary-chromium-'));
  const args = ARGS.slice(); // the fresh --user-data-dir is profile
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: exe, headless: true, args,
    timeout: 15000, handleSIGTERM: true, handleSIGINT: true,
  });
  ctx.profileDir = profile;
  return ctx;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

function scenario(fn) {
  const res = { ok: true, checks: [], dialogs: [], screenshots: [], page_errors: [], data: {}, error: '' };
  let ctx;
  const s = {
    result: res,
    // check records an assertion; a false one fails the Go test.
    check(name, ok, detail) {
      res.checks.push({ name, ok: !!ok, detail: detail === undefined ? '' : String(detail) });
      if (!ok) res.ok = false;
      return !!ok;
    },
    // data records a value the Go test may read (Result.Data[key]).
    data(key, value) { res.data[key] = value; },
    // newPage opens a page whose dialogs are recorded and dismissed; one
    // not expected (opts.expectDialogs false, the default) fails the test.
    async newPage(opts = {}) {
      if (!ctx) ctx = await launch();
      const page = await ctx.newPage();
      page.setDefaultTimeout(opts.timeout || 5000);
      page.on('dialog', async (d) => {
        res.dialogs.push({ type: d.type(), message: d.message(), url: page.url(), expected: !!opts.expectDialogs });
        if (!opts.expectDialogs) res.ok = false;
        try { opts.expectDialogs && opts.acceptDialogs ? await d.accept() : await d.dismiss(); } catch (e) { /* page gone */ }
      });
      page.on('pageerror', (e) => res.page_errors.push(String(e && e.message || e)));
      return page;
    },
    // screenshot saves NAME.png (full page) in the artefact directory.
    async screenshot(page, name) {
      if (!NAME.test(name)) throw new Error(`screenshot name ${JSON.stringify(name)}: use [a-z0-9_-]`);
      const dir = process.env.OSTIARY_BROWSER_ARTIFACTS || fs.mkdtempSync(path.join(os.tmpdir(), 'ostiary-shots-'));
      const file = path.join(dir, name + '.png');
      await page.screenshot({ path: file, fullPage: true });
      res.screenshots.push(file);
      return file;
    },
    // signIn fills a sign-in form (fields named username and password by
    // default) at url and submits it, waiting for the navigation.
    async signIn(page, url, username, password, sel = {}) {
      await page.goto(url);
      await page.fill(sel.username || 'input[name=username]', username);
      await page.fill(sel.password || 'input[name=password]', password);
      await Promise.all([page.waitForNavigation(), page.click(sel.submit || 'button[type=submit], input[type=submit]')]);
    },
  };
  (async () => {
    try { await fn(s); } catch (e) { res.ok = false; res.error = String(e && e.stack || e); }
    try { if (ctx) { await ctx.close(); fs.rmSync(ctx.profileDir, { recursive: true, force: true }); } } catch (e) { /* closing */ }
    out(JSON.stringify(res) + '\n', () => process.exit(0));
  })();
}

module.exports = { launch, scenario, ARGS };
