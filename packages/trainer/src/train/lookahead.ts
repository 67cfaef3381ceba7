/**
 * Iterates `source` one item ahead: `onNext` sees item k+1 (and its index) before item k is handed
 * out, so work it launches (a teacher's forward pass in ONNX Runtime's own threads) overlaps the
 * consumer's processing of item k.
 */
export async function* lookahead<B>(source: AsyncIterable<B>, onNext: (item: B, index: number) => void): AsyncGenerator<B> {
  const it = source[Symbol.asyncIterator]();
  let index = 0;
  let cur = await it.next();
  if (!cur.done) onNext(cur.value, index++);
  try {
    while (!cur.done) {
      const next = await it.next();
      if (!next.done) onNext(next.value, index++);
      yield cur.value;
      cur = next;
    }
  } finally {
    await it.return?.();
  }
}
