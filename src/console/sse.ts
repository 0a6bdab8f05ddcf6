// A server-sent events parser for streams read with fetch() (EventSource cannot send the Authorization header).
// Pure: text in, events out; the page, `capstan ... --watch` and the tests use it.

export interface SseEvent {
  readonly event: string;
  readonly data: string;
  readonly id?: string;
}

/** Text of an event stream in any pieces, events out as each completes (https://html.spec.whatwg.org/#event-stream-interpretation). */
export class SseParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];
  #id: string | undefined;
  /** Lines read so far, comments (the server's keepalives) included: any of them is a sign of life. */
  lines = 0;

  push(text: string): SseEvent[] {
    this.#buffer += text;
    const out: SseEvent[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.#buffer);
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (!m || (m[0] === '\r' && m.index === this.#buffer.length - 1)) break;
      const line = this.#buffer.slice(0, m.index);
      this.#buffer = this.#buffer.slice(m.index + m[0].length);
      this.lines++;
      if (line === '') {
        if (this.#data.length) out.push({ event: this.#event || 'message', data: this.#data.join('\n'), ...(this.#id !== undefined && { id: this.#id }) });
        this.#event = '';
        this.#data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.#event = value;
      else if (field === 'data') this.#data.push(value);
      else if (field === 'id' && !value.includes('\0')) this.#id = value;
    }
    return out;
  }
}
