/**
 * The broker's per-message lifecycle, the seam message history records from. Events are only
 * built when someone listens (`MessageEvents.active`), so delivery pays one boolean check otherwise.
 */
export type MessageEvent =
  | {
      type: 'published';
      at: number;
      topic: string;
      id: string;
      /** The publisher: 'tcp:<remote address>' or 'http:<remote address>'. */
      producer: string;
      body: Buffer;
      /** Set for DPUB / HTTP defer: ms from publish until delivery. */
      deferMs?: number;
    }
  | { type: 'delivered'; at: number; topic: string; channel: string; id: string; client: string; attempt: number }
  | { type: 'finished'; at: number; topic: string; channel: string; id: string; client: string; attempt: number }
  | { type: 'requeued'; at: number; topic: string; channel: string; id: string; client: string; attempt: number; delayMs: number }
  | { type: 'timed_out'; at: number; topic: string; channel: string; id: string; client: string; attempt: number }
  | { type: 'deferred'; at: number; topic: string; channel: string; id: string; until: number }
  | { type: 'dropped'; at: number; topic: string; channel?: string; id: string; reason: string };

export type MessageEventType = MessageEvent['type'];
export type MessageEventListener = (event: MessageEvent) => void;

export class MessageEvents {
  private listeners: MessageEventListener[] = [];
  /** True while anyone listens; producers of events check it before building one. */
  active = false;

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: MessageEventListener): () => void {
    this.listeners = [...this.listeners, listener];
    this.active = true;
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
      this.active = this.listeners.length > 0;
    };
  }

  emit(event: MessageEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // a failing observer must never disturb delivery
      }
    }
  }
}
