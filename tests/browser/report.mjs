// Loads a page in headless Chromium (Debian's, driven by playwright-core) and
// prints, as JSON, what a person would see of the operators' page: each
// pointer with its live version, rollout and ban reasons, plus every console error,
// uncaught exception and request that left the page's own origin.
//
// usage: node report.mjs URL SCREENSHOT.png   (PLAYWRIGHT_CORE: its folder)
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const [url, screenshot] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const out = { consoleErrors: [], pageErrors: [], foreignRequests: [], failedRequests: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const origin = new URL(url).origin;
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => out.pageErrors.push(String(e)));
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith("data:")) out.foreignRequests.push(u);
  });
  page.on("requestfailed", (r) => out.failedRequests.push(r.url()));
  const resp = await page.goto(url, { waitUntil: "load" });
  out.status = resp ? resp.status() : null;
  out.contentType = resp ? resp.headers()["content-type"] : null;
  out.title = await page.title();
  out.pointers = await page.$$eval("article.pointer", (els) => els.map((el) => ({
    pointer: el.dataset.pointer,
    live: el.querySelector(".live-version")?.textContent.trim() ?? null,
    liveLine: el.querySelector(".live .version")?.textContent.replace(/\s+/g, " ").trim() ?? null,
    liveId: el.querySelector(".live .live-id")?.textContent.trim() ?? null,
    rollout: el.querySelector(".rollout .row")?.textContent.replace(/\s+/g, " ").trim() ?? null,
    // The rollout box, field by field, as the text a person reads.
    rolloutBox: el.querySelector(".rollout") ? Object.fromEntries(
      ["candidate", "control", "percent", "state", "buckets"].map((f) => [
        f, el.querySelector(`.rollout .${f}`)?.textContent.trim() ?? null,
      ])) : null,
    banReasons: [...el.querySelectorAll(".ban-reason")].map((q) => q.textContent),
    // The insights box: the adoption chart's lines as drawn, failure rates, bytes saved.
    insights: el.querySelector(".insights") ? {
      chart: [...el.querySelectorAll(".insights svg polyline.series")].map((l) => ({
        label: l.dataset.label, last: Number(l.dataset.last), points: l.getAttribute("points"),
        drawn: l.getBoundingClientRect().width > 0 || l.getBoundingClientRect().height > 0,
      })),
      svgWidth: el.querySelector(".insights svg")?.getBoundingClientRect().width ?? 0,
      failures: Object.fromEntries([...el.querySelectorAll(".insights .failure")].map((p) => [
        [...p.classList].find((c) => c !== "failure"), p.querySelector(".rate").textContent.trim(),
      ])),
      saved: el.querySelector(".insights .saved")?.textContent.trim() ?? null,
      text: el.querySelector(".insights").textContent.replace(/\s+/g, " ").trim(),
    } : null,
    visible: el.getBoundingClientRect().height > 0,
  })));
  out.failedOperations = await page.$$eval("#failed-operations tbody tr", (rows) => rows.map((r) => r.textContent));
  // Opening a pointer's history shows its rows.
  const summary = await page.$("article.pointer details summary");
  if (summary) {
    await summary.click();
    out.historyRowsAfterClick = await page.$$eval("article.pointer details[open] tbody tr", (r) => r.length);
  }
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
