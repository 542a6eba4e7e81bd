/** Flexisip-style and URL connection strings for the MySQL backend. */

import assert from "node:assert/strict";
import {
  ConnectionStringError,
  describeMysqlTarget,
  parseMysqlConnectionString,
} from "../../lib/storage/connection_string.ts";

Deno.test("connection string: Flexisip's quoted key=value list", () => {
  assert.deepEqual(
    parseMysqlConnectionString("db='conf' user='u' password='p' host='10.1.2.3' port=3307"),
    {
      database: "conf",
      user: "u",
      password: "p",
      host: "10.1.2.3",
      port: 3307,
      socketPath: null,
      connectTimeoutMs: null,
    },
  );
});

Deno.test("connection string: bare values, defaults and SOCI aliases", () => {
  assert.deepEqual(parseMysqlConnectionString("  dbname=conf  "), {
    database: "conf",
    user: "root",
    password: "",
    host: "127.0.0.1",
    port: 3306,
    socketPath: null,
    connectTimeoutMs: null,
  });
  const s = parseMysqlConnectionString(
    "service=c pass=x user=flexisip unix_socket=/run/mysqld/mysqld.sock connect_timeout=3",
  );
  assert.equal(s.database, "c");
  assert.equal(s.password, "x");
  assert.equal(s.user, "flexisip");
  assert.equal(s.socketPath, "/run/mysqld/mysqld.sock");
  assert.equal(s.connectTimeoutMs, 3000);
  assert.equal(describeMysqlTarget(s), "/run/mysqld/mysqld.sock");
  assert.equal(describeMysqlTarget(parseMysqlConnectionString("db=c host=h port=1")), "h:1");
});

Deno.test("connection string: quoted passwords keep spaces, quotes and backslashes", () => {
  assert.equal(
    parseMysqlConnectionString(`db='c' password='my secret pass'`).password,
    "my secret pass",
  );
  assert.equal(parseMysqlConnectionString(`db=c password="it's"`).password, "it's");
  assert.equal(parseMysqlConnectionString(`db=c password='a\\'b\\\\c'`).password, "a'b\\c");
  assert.equal(parseMysqlConnectionString(`db=c password=''`).password, "");
  assert.throws(() => parseMysqlConnectionString("db='' user=u"), /no database name/);
});

Deno.test("connection string: mysql:// and mariadb:// URLs", () => {
  assert.deepEqual(
    parseMysqlConnectionString("mysql://flexi:p%40ss%20w@db.example.org:3310/conf"),
    {
      database: "conf",
      user: "flexi",
      password: "p@ss w",
      host: "db.example.org",
      port: 3310,
      socketPath: null,
      connectTimeoutMs: null,
    },
  );
  const v6 = parseMysqlConnectionString("mariadb://[::1]/c?connect_timeout=2");
  assert.equal(v6.host, "::1");
  assert.equal(v6.port, 3306);
  assert.equal(v6.user, "root");
  assert.equal(v6.connectTimeoutMs, 2000);
  assert.equal(
    parseMysqlConnectionString("mysql://u@localhost/c?socket=%2Ftmp%2Fm.sock").socketPath,
    "/tmp/m.sock",
  );
});

Deno.test("connection string: clear errors that never show the password", () => {
  const cases: Array<[string, string]> = [
    ["", "empty"],
    ["   ", "empty"],
    ["user=u", "no database name"],
    ["db=c port=70000", "port must be 1-65535"],
    ["db=c port=abc", "port must be 1-65535"],
    ["db=c colour=blue", `unknown key "colour"`],
    ["db=c password='secret word", "unterminated quote"],
    ["db=c =x", "expected a key at column 6"],
    ["db=c host", `expected '=' after "host"`],
    ["db=c db=d", `"db" is given twice`],
    ["db=c dbname=d", `"dbname" is given twice`],
    ["db=c password='secret'x", "expected a space"],
    ["db=c password=sec'ret", "stray quote"],
    ["db=c connect_timeout=0", "connect_timeout"],
    ["postgres://u@h/db", `unsupported URL scheme "postgres"`],
    ["mysql://u:secret@h", "no database name"],
    ["mysql://u@h/a/b", "/database"],
    ["mysql://u@h/c?ssl=1", `unknown URL parameter "ssl"`],
    ["mysql://u:%E0%A4%A@h/c", "percent-encoding in the password"],
  ];
  for (const [text, expected] of cases) {
    assert.throws(
      () => parseMysqlConnectionString(text),
      (error: unknown) => {
        assert.ok(error instanceof ConnectionStringError, `${text}: ${error}`);
        assert.ok(error instanceof SyntaxError);
        assert.ok(error.message.includes(expected), `${text}: "${error.message}"`);
        assert.ok(!error.message.includes("secret"), `${text}: leaks the password`);
        assert.ok(error.message.startsWith("invalid database-connection-string: "));
        return true;
      },
    );
  }
});
