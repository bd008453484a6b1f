import { EventEmitter } from 'node:events';
import type { LiveChannel } from '../live-channel.js';

export function createEmbeddedLiveChannel(): LiveChannel & { close(): void } {
  const channels = new EventEmitter();
  channels.setMaxListeners(0);
  return {
    async publish(channel, message) {
      channels.emit(channel, message);
    },
    async subscribe(channel, onMessage) {
      channels.on(channel, onMessage);
      return async () => void channels.off(channel, onMessage);
    },
    close() {
      channels.removeAllListeners();
    },
  };
}
