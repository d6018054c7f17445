/** A sleep that `wake()` cuts short; a wake while nobody sleeps makes the next sleep return at once. */
export class Wakeup {
  #pending = false;
  #resolve: (() => void) | undefined;

  wake(): void {
    const resolve = this.#resolve;
    if (resolve === undefined) {
      this.#pending = true;
      return;
    }
    this.#resolve = undefined;
    resolve();
  }

  /** Resolves after `ms`, or earlier on `wake()`: `true` when woken. */
  wait(ms: number): Promise<boolean> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#resolve = undefined;
        resolve(false);
      }, ms);
      this.#resolve = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }
}
