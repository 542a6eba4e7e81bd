/**
 * The Conclave version, read from `deno.json` at build time (also embedded by `deno compile`).
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };

/** Version string from `deno.json` (`"version"`), e.g. `0.1.0`. */
export const VERSION: string = denoJson.version;

/** Default `User-Agent`/`Server` header value (RFC 3261 §20.41, §20.35). */
export const PRODUCT = `Conclave/${VERSION}`;
