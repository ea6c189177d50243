/**
 * The command line of a script: `parseArgs` with a `--help` flag added, usage printed on `--help` (exit 0) and
 * after the parser's own message on a bad flag (exit 2), so each script states its options once.
 */
import { parseArgs } from "node:util";

export function parseCli(options, usage) {
  try {
    const { values } = parseArgs({ options: { ...options, help: { type: "boolean", short: "h", default: false } } });
    if (values.help) {
      console.log(usage);
      process.exit(0);
    }
    return values;
  } catch (error) {
    console.error(`${error.message}\n${usage}`);
    process.exit(2);
  }
}
