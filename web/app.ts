/**
 * What the panels share: the device, the test split, the training split (fetched when first
 * needed), and the current model, with a listener list so that every panel follows it.
 * @module
 */

import { loadSplit, type Net, type Normalization, type Runtime, type Split } from "./engine.ts";
import { setStatus } from "./status.ts";

/** The page's shared state. */
export interface App {
  rt: Runtime;
  test: Split;
  /** The normalization the data files record (the training pixels' mean and std). */
  normalization: Normalization;
  /** The training split, fetched (47 MB) on first use. */
  train(): Promise<Split>;
  net: Net | null;
  /** Makes `net` the current model and tells every panel. */
  setNet(net: Net): void;
  onNet(listener: (net: Net) => void): void;
}

/** The app over a started runtime: fetches the test split first. */
export async function createApp(rt: Runtime): Promise<App> {
  setStatus("Fetching the MNIST test set…");
  const test = await loadSplit("test");
  let train: Promise<Split> | undefined;
  const listeners: ((net: Net) => void)[] = [];
  const app: App = {
    rt,
    test,
    normalization: test.normalization,
    train() {
      train ??= loadSplit("train");
      return train;
    },
    net: null,
    setNet(net) {
      app.net = net;
      for (const listener of listeners) listener(net);
    },
    onNet(listener) {
      listeners.push(listener);
    },
  };
  return app;
}
