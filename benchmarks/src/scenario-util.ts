/** Small helpers the scenario modules share. */

/** Receives a scenario's errors; see {@link firstErrorReporter}. */
export type ErrorReporter = (scenarioName: string, error: unknown) => void;

/** Passes on each scenario's first error only: one broken fixture fails every batch alike. */
export function firstErrorReporter(onError: ((scenarioName: string, error: unknown) => void) | undefined): ErrorReporter {
  const seen = new Set<string>();
  return (scenarioName, error) => {
    if (seen.has(scenarioName)) return;
    seen.add(scenarioName);
    onError?.(scenarioName, error);
  };
}

/** `r3` for measured round 3, `w1` for the first warm-up round (the harnesses number those -1, -2, …). */
export function roundLabel(round: number): string {
  return round >= 0 ? `r${round}` : `w${-round}`;
}
