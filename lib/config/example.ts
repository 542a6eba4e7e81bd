/**
 * Writes `conference.conf.example` from the key table: every key with its doc line, type and
 * allowed values, and its default value set. A test checks that the shipped file is exactly
 * this text and that it parses to the defaults.
 * @module
 */

import { type Config, SCHEMA, schemaKeys } from "./schema.ts";
import { DEFAULT_CONFIG_PATH } from "./config.ts";

const HEADER =
  `# conference.conf: configuration of Conclave, a SIP conference server (RFC 4353 focus).
#
# Install as ${DEFAULT_CONFIG_PATH} (read by default) or pass --config FILE.
# Every key is listed below with its default value, so this file as shipped behaves exactly
# like no file at all. Change what you need; a key left out keeps its default.
# Check a file without starting the server (prints the effective configuration):
#     conclave --config ${DEFAULT_CONFIG_PATH} --check-config
#
# Syntax (Flexisip compatible):
#   [section] headers; key=value lines; comments on their own line, starting with # or ;
#   values run to the end of the line, spaces included, and need no quotes
#   booleans:  true/false, yes/no, on/off, 1/0
#   durations: 500ms, 30s, 10min, 2h, 30d, 1w, 100y, compounds like 1h30min;
#              a bare number means seconds (as in Flexisip)
#   lists:     values separated by spaces
#   an empty value (key=) means "empty list" for lists, and "automatic" where noted
# Unknown keys are reported as warnings naming the closest known key. An invalid value stops
# the server before it opens any socket, with the file, line and key in the message.
`;

/** The text of `conference.conf.example`. */
export function exampleConfigText(): string {
  let text = HEADER;
  let section = "";
  for (const { section: name, sectionField, spec } of schemaKeys()) {
    if (name !== section) {
      const doc = SCHEMA[sectionField as keyof Config].doc;
      text += `\n${"#".repeat(94)}\n[${name}]\n# ${doc}\n`;
      section = name;
    }
    text += `\n# ${spec.doc}\n`;
    for (const detail of spec.details ?? []) text += `#   ${detail}\n`;
    text += `# Type: ${spec.type.description}\n`;
    text += `# Default: ${spec.default === "" ? "(empty)" : spec.default}\n`;
    text += `${spec.name}=${spec.default}\n`;
  }
  return text;
}
