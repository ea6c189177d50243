import { describe, expect, it } from "vitest";
import { createMemoryBudget, OverloadedError } from "./budget";

const budget = (capacityBytes = 100, maxQueue = 2, maxWaitMs = 200) =>
  createMemoryBudget({ capacityBytes, maxQueue, maxWaitMs, retryAfterSeconds: 1 });

describe("the memory budget", () => {
  it("grants reservations while they fit and never lets the sum pass the capacity", async () => {
    const b = budget();
    const a = await b.reserve(60);
    expect(b.tryReserve(50)).toBeUndefined();
    const c = await b.reserve(40);
    expect(b.reservedBytes).toBe(100);
    a.release();
    a.release(); // a second release gives nothing back twice
    expect(b.reservedBytes).toBe(40);
    c.release();
    expect(b.reservedBytes).toBe(0);
  });

  it("a shrunk reservation gives back the difference at once, to the queue first, and never grows", async () => {
    const b = budget();
    const worstCase = await b.reserve(90);
    const waiting = b.reserve(50);
    worstCase.shrink(40);
    expect(worstCase.bytes).toBe(40);
    expect((await waiting).bytes).toBe(50);
    expect(b.reservedBytes).toBe(90);
    worstCase.shrink(60); // larger than held: ignored
    expect(worstCase.bytes).toBe(40);
    worstCase.release();
    expect(b.reservedBytes).toBe(50);
  });

  it("queues a request that does not fit and grants it, in order, when memory is released", async () => {
    const b = budget();
    const big = await b.reserve(90);
    const order: string[] = [];
    const first = b.reserve(50, { label: "first" }).then((r) => {
      order.push("first");
      return r;
    });
    const second = b.reserve(10, { label: "second" }).then((r) => {
      order.push("second");
      return r;
    });
    expect(b.waiting).toBe(2);
    big.release();
    const [r1, r2] = await Promise.all([first, second]);
    expect(order).toEqual(["first", "second"]);
    expect(b.reservedBytes).toBe(60);
    r1.release();
    r2.release();
  });

  it("refuses at once when the queue is full, and after the wait when memory stays taken", async () => {
    const b = budget(100, 1, 30);
    const held = await b.reserve(100);
    const waiting = b.reserve(10);
    await expect(b.reserve(10)).rejects.toBeInstanceOf(OverloadedError);
    await expect(waiting).rejects.toBeInstanceOf(OverloadedError);
    expect(b.waiting).toBe(0);
    held.release();
    expect(b.reservedBytes).toBe(0);
  });

  it("refuses work larger than the whole budget without queueing it", async () => {
    const b = budget();
    await expect(b.reserve(101)).rejects.toThrow(/more than this isolate's whole budget/);
    expect(b.waiting).toBe(0);
  });

  it("lets smaller requests behind a timed-out large one through", async () => {
    const b = budget(100, 4, 20);
    const held = await b.reserve(50);
    const large = b.reserve(80); // gives up after the budget's 20 ms
    // Waits longer than the large one: with equal waits both deadlines fall in the same poll and the small
    // one could give up in the very tick the large one's departure lets it in.
    const small = b.reserve(30, { maxWaitMs: 2_000 });
    await expect(large).rejects.toBeInstanceOf(OverloadedError);
    const granted = await small;
    expect(b.reservedBytes).toBe(80);
    granted.release();
    held.release();
  });

  it("resizes a reservation in place: shrinking lets a queued request in, growing only while it fits", async () => {
    const b = budget();
    const model = await b.reserve(90, { label: "model" });
    const queued = b.reserve(20);
    expect(model.resize(70)).toBe(true);
    const granted = await queued;
    expect(b.reservedBytes).toBe(90);
    expect(model.resize(81)).toBe(false);
    expect(model.bytes).toBe(70);
    expect(model.resize(80)).toBe(true);
    expect(b.reservedBytes).toBe(100);
    model.release();
    expect(model.resize(10)).toBe(false);
    expect(b.reservedBytes).toBe(20);
    granted.release();
  });
});
