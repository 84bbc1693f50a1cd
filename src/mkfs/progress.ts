// Build progress: counted where the work happens, reported at most every REPORT_MS.

export interface BuildProgress {
  /** 'scanning': the source is being walked; inodesDone counts what it found, no totals yet. */
  phase: 'scanning' | 'compressing' | 'writing';
  inodesDone: number;
  /** 0 while scanning. */
  inodesTotal: number;
  /** Regular-file bytes processed, of bytesTotal. */
  bytesDone: number;
  bytesTotal: number;
  elapsedMs: number;
}

const REPORT_MS = 100;

export class ProgressCounter {
  phase: BuildProgress['phase'] = 'scanning';
  private inodesDone = 0;
  private bytesDone = 0;
  private inodesTotal = 0;
  private bytesTotal = 0;
  private lastReport = 0;
  private readonly start = Date.now();

  constructor(private readonly report: ((p: BuildProgress) => void) | undefined) {}

  /** The walk has found this many entries so far. */
  scanned(entries: number): void {
    this.inodesDone = entries;
    this.maybeReport();
  }

  /** The walk is over: what is done from now on counts towards these totals. */
  walked(inodesTotal: number, bytesTotal: number): void {
    this.phase = 'writing';
    this.inodesTotal = inodesTotal;
    this.bytesTotal = bytesTotal;
    this.inodesDone = 0;
  }

  /** A regular file's data is done. */
  file(bytes: number): void {
    this.bytesDone += bytes;
    this.maybeReport();
  }

  /** An inode is written. */
  inode(): void {
    this.inodesDone++;
    this.maybeReport();
  }

  private maybeReport(): void {
    if (!this.report) return;
    const now = Date.now();
    if (now - this.lastReport < REPORT_MS) return;
    this.lastReport = now;
    this.report(this.snapshot());
  }

  snapshot(): BuildProgress {
    return {
      phase: this.phase,
      inodesDone: this.inodesDone,
      inodesTotal: this.inodesTotal,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      elapsedMs: Date.now() - this.start,
    };
  }
}
