// A pull reader over a stream of Buffers: exact-length reads, skips and pass-through copies,
// with the stream offset kept for error messages and tar index offsets.

export class ByteReader {
  private chunks: Buffer[] = [];
  /** Read position inside chunks[0]. */
  private head = 0;
  private buffered = 0;
  private ended = false;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.source.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    if (r.value.length > 0) {
      this.chunks.push(r.value);
      this.buffered += r.value.length;
    }
    return true;
  }

  /** Exactly n bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    while (this.buffered < n && (await this.pull()));
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(Math.min(n, this.buffered));
    let got = 0;
    while (got < out.length) {
      const c = this.chunks[0]!;
      const take = Math.min(c.length - this.head, out.length - got);
      c.copy(out, got, this.head, this.head + take);
      got += take;
      this.advance(take);
    }
    return out;
  }

  /**
   * Hands the next n bytes to sink in pieces (views valid only during the call). Returns how
   * many bytes there were: fewer than n only at the end of the stream.
   */
  async pipe(n: number, sink: ((piece: Buffer) => void) | null): Promise<number> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.pull())) break;
      const c = this.chunks[0];
      if (!c) continue;
      const take = Math.min(c.length - this.head, left);
      sink?.(c.subarray(this.head, this.head + take));
      this.advance(take);
      left -= take;
    }
    return n - left;
  }

  private advance(n: number): void {
    this.head += n;
    this.buffered -= n;
    this.offset += n;
    while (this.chunks.length > 0 && this.head >= this.chunks[0]!.length) {
      this.head -= this.chunks[0]!.length;
      this.chunks.shift();
    }
  }
}
