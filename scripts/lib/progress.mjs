/** Progress lines for long transfers: one line per 10 % for files of LARGE_BYTES or more, nothing for small ones. */

/** Files from this size on get progress lines (smaller ones take well under a second). */
export const LARGE_BYTES = 8 * 1024 * 1024;

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Returns `(doneBytes) => void`, which logs `label: 30 % (x of y)` each time another tenth is done. */
export function progressReporter(label, totalBytes, log) {
  if (!totalBytes || totalBytes < LARGE_BYTES) return () => {};
  let lastTenth = 0;
  return (done) => {
    const tenth = Math.floor((done / totalBytes) * 10);
    if (tenth > lastTenth) {
      lastTenth = tenth;
      log(`${label}: ${Math.min(100, tenth * 10)} % (${formatBytes(done)} of ${formatBytes(totalBytes)})`);
    }
  };
}
