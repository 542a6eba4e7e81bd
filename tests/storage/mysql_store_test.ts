/**
 * MySQL backend: the same conformance suite against the real MariaDB on 127.0.0.1:3306,
 * each test in its own freshly created and dropped database.
 */

import { openStore } from "../../lib/storage/open_store.ts";
import type { Store } from "../../lib/storage/store.ts";
import { defineStoreConformance, type StoreFixture } from "./_conformance.ts";
import {
  createDatabase,
  dropDatabase,
  ignoreWithoutMariadb,
  sharedConnectionString,
  uniqueDatabaseName,
} from "./_support.ts";

const ignore = ignoreWithoutMariadb("tests/storage/mysql_store_test.ts");

async function mysqlFixture(options: { maxEventsPerConference?: number }): Promise<StoreFixture> {
  const database = uniqueDatabaseName("conf");
  await createDatabase(database);
  const open = () =>
    openStore({
      backend: "mysql",
      connectionString: sharedConnectionString(database),
      stateDirectory: "/nonexistent",
      ...options,
    });
  let current: Store;
  try {
    current = await open();
  } catch (error) {
    await dropDatabase(database);
    throw error;
  }
  return {
    get store() {
      return current;
    },
    async reopen() {
      await current.close();
      current = await open();
      return current;
    },
    async dispose() {
      await current.close();
      await dropDatabase(database);
    },
  };
}

defineStoreConformance("mysql", mysqlFixture, ignore);
