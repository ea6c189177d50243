/**
 * An error and its causes as one line for a log entry (never for a client's answer): "Name: message <- Cause: message".
 * Four levels at most, so a cause chain that loops still ends.
 */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e = error, depth = 0; e !== undefined && depth < 4; e = e instanceof Error ? e.cause : undefined, depth++) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  }
  return parts.join(" <- ");
}
