// The harness's own test (internal/testutil/browser): a strict CSP must
// stop injected inline script and event handlers while a same-origin
// script runs, and frame-ancestors 'none' must stop framing.
'use strict';
const b = require('./lib');

b.scenario(async (s) => {
  const page = await s.newPage();
  await page.goto(process.env.CSP_URL);
  await page.waitForFunction(() => document.body.dataset.allowed === 'ran');
  s.check('same-origin script ran', (await page.evaluate(() => document.body.dataset.allowed)) === 'ran');
  s.check('inline script did not run', (await page.evaluate(() => window.injected === undefined)));
  s.check('onerror handler did not run', (await page.evaluate(() => document.body.dataset.onerror === undefined)));
  await s.screenshot(page, 'csp');

  const framer = await s.newPage();
  await framer.goto(process.env.FRAMER_URL);
  const frame = await framer.waitForSelector('iframe');
  await framer.waitForTimeout(300);
  const inner = await frame.contentFrame();
  let framed = false;
  if (inner) {
    try { framed = (await inner.evaluate(() => document.title)) === 'victim'; } catch (e) { framed = false; }
  }
  s.check('page with frame-ancestors none not framed', !framed, inner ? inner.url() : 'no frame');
  await s.screenshot(framer, 'framer');
});
