// The signal handlers of the CLI, for tests that run it in their own process.

/**
 * For tests that call the CLI's main() in their own process: it installs signal handlers
 * that stay behind there. The returned function removes those added since this call.
 */
export function keepSignalHandlers(): () => void {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const before = signals.map((s) => process.listeners(s));
  return () =>
    signals.forEach((s, i) => {
      for (const h of process.listeners(s)) if (!before[i]!.includes(h)) process.off(s, h);
    });
}
