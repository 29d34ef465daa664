import { describe, expect, it } from 'vitest';
import { createConnectionBudget } from './budget.js';

describe('connection budget', () => {
  it('limits each host separately and hands freed slots to waiters in order', async () => {
    const budget = createConnectionBudget(2);
    const a1 = await budget.acquire('a');
    const a2 = await budget.acquire('a');
    const b1 = await budget.acquire('b');
    expect(budget.inUse('a')).toBe(2);
    expect(budget.total()).toBe(3);
    const order: string[] = [];
    const w1 = budget.acquire('a').then((r) => (order.push('w1'), r));
    const w2 = budget.acquire('a').then((r) => (order.push('w2'), r));
    await Promise.resolve();
    expect(order).toEqual([]);
    a1();
    a1(); // releasing twice frees one slot only
    const r1 = await w1;
    expect(order).toEqual(['w1']);
    expect(budget.inUse('a')).toBe(2);
    a2();
    await w2;
    expect(order).toEqual(['w1', 'w2']);
    r1();
    b1();
    expect(budget.inUse('b')).toBe(0);
  });

  it('drops a waiter whose signal aborts', async () => {
    const budget = createConnectionBudget(1);
    const held = await budget.acquire('h');
    const controller = new AbortController();
    const waiting = budget.acquire('h', controller.signal);
    controller.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    held();
    expect(budget.inUse('h')).toBe(0);
  });
});
