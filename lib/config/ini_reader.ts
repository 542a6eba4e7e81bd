/**
 * A line-oriented reader for Flexisip-style INI files: `[section]` headers, `key=value`
 * entries (spaces around `=` are ignored, values may contain spaces, `#`, `;` and quotes and
 * are kept as written), and whole-line comments starting with `#` or `;`. Every item keeps its
 * 1-based line number so that errors can name it.
 * @module
 */

/** A `[section]` header. */
export interface IniSection {
  readonly kind: "section";
  readonly name: string;
  readonly line: number;
}

/** A `key=value` line. */
export interface IniEntry {
  readonly kind: "entry";
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

/** A line that is none of the above. */
export interface IniSyntaxProblem {
  readonly line: number;
  readonly message: string;
}

/** Headers and entries in file order, plus malformed lines. */
export interface IniDocument {
  readonly items: readonly (IniSection | IniEntry)[];
  readonly problems: readonly IniSyntaxProblem[];
}

/** Splits INI text into headers and entries; never throws. */
export function readIni(text: string): IniDocument {
  const items: (IniSection | IniEntry)[] = [];
  const problems: IniSyntaxProblem[] = [];
  const source = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const lines = source.split(/\r\n|\n|\r/);
  for (let index = 0; index < lines.length; index++) {
    const line = index + 1;
    const content = (lines[index] ?? "").trim();
    if (content === "" || content.startsWith("#") || content.startsWith(";")) continue;
    if (content.startsWith("[")) {
      const close = content.indexOf("]");
      const after = close < 0 ? "" : content.slice(close + 1).trim();
      const name = close < 0 ? "" : content.slice(1, close).trim();
      if (close < 0) {
        problems.push({ line, message: `unterminated section header "${content}"` });
      } else if (after !== "" && !after.startsWith("#") && !after.startsWith(";")) {
        problems.push({ line, message: `unexpected text after section header: "${after}"` });
      } else if (name === "") {
        problems.push({ line, message: "empty section name" });
      } else {
        items.push({ kind: "section", name, line });
      }
      continue;
    }
    const eq = content.indexOf("=");
    if (eq < 0) {
      problems.push({
        line,
        message: `expected "key=value", "[section]" or a comment, found "${content}"`,
      });
      continue;
    }
    const key = content.slice(0, eq).trim();
    if (key === "") {
      problems.push({ line, message: `missing key name before "="` });
      continue;
    }
    items.push({ kind: "entry", key, value: content.slice(eq + 1).trim(), line });
  }
  return { items, problems };
}
