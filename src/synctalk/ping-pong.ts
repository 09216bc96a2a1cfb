/**
 * pingPong: the track frame SyncTalk shows at output frame i of a clip of `n` training frames (its dataloader's
 * `mirror_index`): 0, 1 .. n-1, n-1, n-2 .. 0, 0, 1 .. (each end shown twice, the walk never jumps).
 */
export function pingPong(i: number, n: number): number {
  const turn = Math.floor(i / n);
  const at = i % n;
  return turn % 2 === 0 ? at : n - 1 - at;
}
