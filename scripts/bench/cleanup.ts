/**
 * Everything the benchmark creates (databases, queue keys, processes, connections) registers how to
 * undo itself; the undo runs once, in reverse order, on success, failure or Ctrl-C.
 */
const steps: Array<{ what: string; run: () => Promise<void> }> = [];
let cleaning: Promise<void> | undefined;

export function onCleanup(what: string, run: () => Promise<void>): () => Promise<void> {
  const step = { what, run };
  steps.push(step);
  // Undo this one now (a per-run resource), and not again at the end.
  return async () => {
    const i = steps.indexOf(step);
    if (i < 0) return;
    steps.splice(i, 1);
    await runStep(step);
  };
}

async function runStep(step: { what: string; run: () => Promise<void> }): Promise<void> {
  await step
    .run()
    .catch((err) => console.error(`clean-up: ${step.what}: ${err instanceof Error ? err.message : String(err)}`));
}

export function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const step of steps.splice(0).reverse()) await runStep(step);
  })();
  return cleaning;
}
