// Names are kept as latin1 strings, one char per byte, so no buffer is made per name; they
// go back into bytes here. Buffer.write checks its arguments in JavaScript before it calls
// the encoder, which costs more than the copy for a name of a dozen bytes: the encoder
// Buffer has on its prototype is called directly where there is one.

type Latin1Writer = (buf: Uint8Array, s: string, at: number) => void;

const native = (Buffer.prototype as Buffer & { latin1Write?: unknown }).latin1Write;

/** Writes the latin1 string `s` into `buf` at `at` (which must have room for it), a byte per char. */
export const writeLatin1: Latin1Writer =
  typeof native === 'function'
    ? (buf, s, at) => void (native as (this: Uint8Array, s: string, offset: number, length: number) => number).call(buf, s, at, s.length)
    : (buf, s, at) => {
        for (let j = 0; j < s.length; j++) buf[at + j] = s.charCodeAt(j);
      };
