/**
 * Marble tests of `gain` (this project's operator) composed with the package's `chunk`, on RxJS's
 * TestScheduler, with node:assert's deep equality (typed arrays compared by value). Exits 1 on a mismatch.
 */
import { deepStrictEqual } from 'node:assert/strict';
import { TestScheduler } from 'rxjs/testing';
import { audio, chunk, flush, segmentEnd, type AudioChunk } from 'synctalk-live';
import { gain } from './gain.js';

/** Mono audio at 8 Hz, so every pts is exact in binary. */
const RATE = 8;
const mono = (values: number[], pts: number, padding?: number): AudioChunk => audio(Float32Array.from(values), RATE, 1, pts, 0, padding);
const scheduler = (): TestScheduler => new TestScheduler((actual, expected) => deepStrictEqual(actual, expected));

scheduler().run(({ cold, expectObservable }) => {
  const input = cold('-a-b---S----F-|', { a: mono([1, 2, 3], 0), b: mono([4, 5], 3 / RATE), S: segmentEnd(0, 5 / RATE), F: flush('interrupted') });
  expectObservable(input.pipe(chunk({ size: 4 }), gain(2))).toBe('---x---(pS)-F-|', {
    x: mono([2, 4, 6, 8], 0),
    p: mono([10, 0, 0, 0], 4 / RATE, 3),
    S: segmentEnd(0, 5 / RATE),
    F: flush('interrupted'),
  });
});

scheduler().run(({ cold, expectObservable }) => {
  // a flush drops the remainder chunk holds: nothing of `a` is emitted after it
  const input = cold('-a--F-|', { a: mono([1, 2, 3], 0), F: flush('interrupted') });
  expectObservable(input.pipe(chunk({ size: 4 }), gain(2))).toBe('----F-|', { F: flush('interrupted') });
});

console.log('marbles: 2 passed');
