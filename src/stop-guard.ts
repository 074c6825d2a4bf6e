/**
 * What a stop signal may cut short. The flows stop between steps when SIGTERM/SIGINT arrives; but a step that
 * never returns (a read that blocks, a peer that never answers) would keep the process up until SIGKILL, and
 * a pod's grace period would end in a kill. So the CLI ends the process itself a few seconds after the
 * signal, or at once on a second signal, except while a host step is running: a modprobe, a firmware copy,
 * a sysfs write, or a region a command declares (the daemon's unload at shutdown). Those finish first, so
 * the cleanup contract holds: a step that has started finishes (or the flow rolls it back).
 */
let running = 0;
let idleWaiters: Array<() => void> = [];

/** Marks a step that must not be cut; call the returned function when it ends (idempotent). */
export function beginStep(): () => void {
  running++;
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    running--;
    if (running === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  };
}

/** Runs `fn` as a step that a stop signal waits for. */
export async function asStep<T>(fn: () => Promise<T>): Promise<T> {
  const end = beginStep();
  try {
    return await fn();
  } finally {
    end();
  }
}

/** Resolves when no step is running. */
export function whenNoStep(): Promise<void> {
  if (running === 0) return Promise.resolve();
  return new Promise((resolve) => idleWaiters.push(resolve));
}

export function stepsRunning(): number {
  return running;
}

/** The same object, with every method that returns a promise run as a step. */
export function guardedSteps<T extends object>(target: T): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const v = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => asStep(async () => (v as (...a: unknown[]) => Promise<unknown>).apply(obj, args));
    },
  });
}
