import assert from "node:assert/strict";
import { readIni } from "../../lib/config/ini_reader.ts";

Deno.test("INI lines keep their line numbers and raw values", () => {
  const text = "\uFEFF# c\r\n[a]\r\n key = v with # and ; and 'q' \r\n\r\n; x\n[ b ] # note\nk=\n";
  const { items, problems } = readIni(text);
  assert.deepEqual(problems, []);
  assert.deepEqual(items, [
    { kind: "section", name: "a", line: 2 },
    { kind: "entry", key: "key", value: "v with # and ; and 'q'", line: 3 },
    { kind: "section", name: "b", line: 6 },
    { kind: "entry", key: "k", value: "", line: 7 },
  ]);
});

Deno.test("INI malformed lines are reported, the rest still read", () => {
  const { items, problems } = readIni("[]\nnoequals\n[s]\nk=v=w\n");
  assert.deepEqual(problems, [
    { line: 1, message: "empty section name" },
    { line: 2, message: 'expected "key=value", "[section]" or a comment, found "noequals"' },
  ]);
  assert.deepEqual(items, [
    { kind: "section", name: "s", line: 3 },
    { kind: "entry", key: "k", value: "v=w", line: 4 },
  ]);
});
