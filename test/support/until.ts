/** Waits until `test` holds, checking every `everyMs`; fails naming `what` after `ms`. */
export async function until(what: string, test: () => boolean | Promise<boolean>, ms = 60_000, everyMs = 50): Promise<void> {
  const end = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
