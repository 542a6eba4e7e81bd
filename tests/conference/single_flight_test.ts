import assert from "node:assert/strict";
import { SingleFlight } from "../../lib/conference/single_flight.ts";

Deno.test("SingleFlight: concurrent runs of a key share one load; a finished key runs again", async () => {
  const flight = new SingleFlight<number>();
  let loads = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const work = async () => {
    loads++;
    await gate;
    return loads;
  };
  const a = flight.run("x", work);
  const b = flight.run("x", work);
  const other = flight.run("y", () => Promise.resolve(-1));
  assert.equal(a, b);
  release();
  assert.deepEqual(await Promise.all([a, b, other]), [1, 1, -1]);
  assert.equal(await flight.run("x", work), 2);
  // A failed load is not kept either.
  await assert.rejects(flight.run("z", () => Promise.reject(new Error("down"))), /down/);
  assert.equal(await flight.run("z", () => Promise.resolve(7)), 7);
});
