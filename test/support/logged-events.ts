/**
 * The structured events a console spy saw: the model holder's `{event: ...}` objects, whatever else (the
 * per-request log line, a stray string) was logged beside them.
 */
export function loggedEvents(spy: { mock: { calls: unknown[][] } }): Record<string, unknown>[] {
  return spy.mock.calls
    .map((call) => call[0])
    .filter((arg): arg is Record<string, unknown> => typeof arg === "object" && arg !== null && "event" in arg);
}
