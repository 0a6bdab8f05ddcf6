/** A minimal ustar archive, enough for container.putArchive of a few small root-owned files. */

export interface TarEntry {
  /** Relative path; a trailing "/" makes a directory. */
  readonly path: string;
  readonly mode: number;
  readonly content?: string;
}

const BLOCK = 512;

export function tar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.content ?? '', 'utf8');
    const dir = entry.path.endsWith('/');
    if (Buffer.byteLength(entry.path) > 100) throw new Error(`tar path too long: ${entry.path}`);
    const header = Buffer.alloc(BLOCK);
    header.write(entry.path, 0, 100, 'utf8');
    header.write(octal(entry.mode, 8), 100);
    header.write(octal(0, 8), 108); // uid
    header.write(octal(0, 8), 116); // gid
    header.write(octal(dir ? 0 : body.length, 12), 124);
    header.write(octal(Math.floor(Date.now() / 1000), 12), 136);
    header.write(' '.repeat(8), 148); // checksum counts itself as spaces
    header.write(dir ? '5' : '0', 156);
    header.write('ustar\u000000', 257);
    header.write('root', 265);
    header.write('root', 297);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148);
    parts.push(header);
    if (!dir) parts.push(body, Buffer.alloc((BLOCK - (body.length % BLOCK)) % BLOCK));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\u0000`;
}
