// What the browser tests do on the chat page (GET /): type a line, read
// the lines of one sender, wait for lines and for the member list. The
// page marks each line with data-from / data-text and each member with
// data-name, so the tests read those, not the rendered text.

/** Types `text` into the page's input and sends it. */
export async function say(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

/** Texts of the chat lines in `page` from sender `from`, in display order. */
export function linesFrom(page, from) {
  return page.$$eval('#messages .msg', (els, who) => els.filter((e) => e.dataset.from === who).map((e) => e.dataset.text), from);
}

/** Waits until `page` shows at least `count` lines from `from`. */
export async function waitLines(page, from, count, timeout = 10000) {
  try {
    await page.waitForFunction(
      ([who, n]) => [...document.querySelectorAll('#messages .msg')].filter((e) => e.dataset.from === who).length >= n,
      [from, count],
      { timeout, polling: 50 },
    );
  } catch {
    const got = await linesFrom(page, from);
    throw new Error(`${page.url()}: expected ${count} lines from ${from}, got ${JSON.stringify(got)}`);
  }
}

/** The names in the page's member list, sorted. */
export function memberNames(page) {
  return page.$$eval('#members li', (els) => els.map((e) => e.dataset.name).sort());
}

/**
 * Waits until the member list is exactly `names`; with `count`, the
 * member count shown must match too.
 */
export async function waitMembers(page, names, { timeout = 10000, count = false } = {}) {
  const want = [...names].sort();
  try {
    await page.waitForFunction(
      ([w, withCount]) => JSON.stringify([...document.querySelectorAll('#members li')].map((e) => e.dataset.name).sort()) === JSON.stringify(w)
        && (!withCount || document.querySelector('#member-count').dataset.count === String(w.length)),
      [want, count],
      { timeout, polling: 50 },
    );
  } catch {
    const shown = count ? ` (count "${await page.textContent('#member-count')}")` : '';
    throw new Error(`${page.url()}: members ${JSON.stringify(await memberNames(page))}${shown}, want ${JSON.stringify(want)}`);
  }
}
