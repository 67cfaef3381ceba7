/**
 * Iterates `source` one item ahead: `start` is called on item k+1 before item k is handed out, so
 * work it launches (a teacher's forward pass in ONNX Runtime's own threads) overlaps the consumer's
 * processing of item k.
 */
export async function* lookahead<B, T>(
  source: AsyncIterable<B>,
  start: (item: B) => Promise<T> | undefined,
): AsyncGenerator<{ item: B; pending: Promise<T> | undefined }> {
  const it = source[Symbol.asyncIterator]();
  let cur = await it.next();
  let curPending = cur.done ? undefined : start(cur.value);
  try {
    while (!cur.done) {
      const next = await it.next();
      const nextPending = next.done ? undefined : start(next.value);
      // A rejected look-ahead must not go unhandled if the consumer stops before reaching it.
      nextPending?.catch(() => undefined);
      yield { item: cur.value, pending: curPending };
      cur = next;
      curPending = nextPending;
    }
  } finally {
    await it.return?.();
  }
}
