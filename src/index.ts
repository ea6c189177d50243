/** The Worker: one Hono app per isolate. */
import { createApp } from "./http/app";

export default createApp();
