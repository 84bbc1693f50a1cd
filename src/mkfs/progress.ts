// Build progress: counted where the work happens, reported at most every REPORT_MS.

export interface BuildProgress {
  phase: 'compressing' | 'writing';
  inodesDone: number;
  inodesTotal: number;
  /** Regular-file bytes processed, of bytesTotal. */
  bytesDone: number;
  bytesTotal: number;
  elapsedMs: number;
}

const REPORT_MS = 100;

export class ProgressCounter {
  phase: BuildProgress['phase'] = 'writing';
  private inodesDone = 0;
  private bytesDone = 0;
  private lastReport = 0;
  private readonly start = Date.now();

  constructor(
    private readonly inodesTotal: number,
    private readonly bytesTotal: number,
    private readonly report: ((p: BuildProgress) => void) | undefined,
  ) {}

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
