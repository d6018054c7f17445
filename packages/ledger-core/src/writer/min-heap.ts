/** A binary min-heap of (key, value) pairs ordered by numeric key. */
export class MinHeap<V> {
  readonly #keys: number[] = [];
  readonly #values: V[] = [];

  get size(): number {
    return this.#keys.length;
  }

  /** The smallest key, or `undefined` when empty. */
  peekKey(): number | undefined {
    return this.#keys[0];
  }

  push(key: number, value: V): void {
    this.#keys.push(key);
    this.#values.push(value);
    let at = this.#keys.length - 1;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if ((this.#keys[parent] as number) <= key) break;
      this.#swap(at, parent);
      at = parent;
    }
  }

  /** Removes and returns the value with the smallest key. */
  pop(): V | undefined {
    if (this.#keys.length === 0) return undefined;
    const top = this.#values[0];
    const lastKey = this.#keys.pop() as number;
    const lastValue = this.#values.pop() as V;
    if (this.#keys.length > 0) {
      this.#keys[0] = lastKey;
      this.#values[0] = lastValue;
      let at = 0;
      for (;;) {
        const left = 2 * at + 1;
        const right = left + 1;
        let smallest = at;
        if (left < this.#keys.length && (this.#keys[left] as number) < (this.#keys[smallest] as number)) smallest = left;
        if (right < this.#keys.length && (this.#keys[right] as number) < (this.#keys[smallest] as number)) smallest = right;
        if (smallest === at) break;
        this.#swap(at, smallest);
        at = smallest;
      }
    }
    return top;
  }

  #swap(a: number, b: number): void {
    const key = this.#keys[a] as number;
    this.#keys[a] = this.#keys[b] as number;
    this.#keys[b] = key;
    const value = this.#values[a] as V;
    this.#values[a] = this.#values[b] as V;
    this.#values[b] = value;
  }
}
