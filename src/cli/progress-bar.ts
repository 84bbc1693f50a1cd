// The progress line mkfs.erofs draws on a terminal's stderr during long builds.

import type { WriteStream } from 'node:tty';
import type { BuildProgress } from '../mkfs/progress.js';

/** Builds shorter than this never show a bar. */
const SHOW_AFTER_MS = 1000;
const WIDTH = 24;

const mb = (n: number): string => (n / 1e6).toFixed(1);

export function formatProgress(p: BuildProgress): string {
  // No totals yet: a count, not a bar.
  if (p.phase === 'scanning') return `scanning ${p.inodesDone} entries`;
  const fraction = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : p.inodesTotal > 0 ? p.inodesDone / p.inodesTotal : 1;
  const filled = Math.round(Math.min(1, fraction) * WIDTH);
  const rate = p.elapsedMs > 0 ? p.bytesDone / (p.elapsedMs / 1000) : 0;
  const eta = rate > 0 ? Math.ceil((p.bytesTotal - p.bytesDone) / rate) : null;
  return (
    `${p.phase} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${Math.floor(fraction * 100)}% ` +
    `${p.inodesDone}/${p.inodesTotal} inodes ${mb(p.bytesDone)}/${mb(p.bytesTotal)} MB ` +
    `${mb(rate)} MB/s${eta === null ? '' : ` ETA ${eta}s`}`
  );
}

export class ProgressBar {
  private shown = false;

  constructor(private readonly out: WriteStream) {}

  update(p: BuildProgress): void {
    if (p.elapsedMs < SHOW_AFTER_MS) return;
    const line = formatProgress(p).slice(0, Math.max(20, (this.out.columns || 80) - 1));
    this.out.write(`\r${line}\x1b[K`);
    this.shown = true;
  }

  /** Erases the bar so the summary or an error starts on a clean line. */
  clear(): void {
    if (this.shown) this.out.write('\r\x1b[K');
    this.shown = false;
  }
}
