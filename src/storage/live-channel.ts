// Live pushes between processes: a change of a count is announced on a channel; live streams
// (SSE) of any process that listen on it read the count again. Redis pub/sub in production,
// an in-process emitter in the embedded default.

export interface LiveChannel {
  publish(channel: string, message: string): Promise<void>;
  /** Resolves once subscribed; the returned function unsubscribes. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
}
