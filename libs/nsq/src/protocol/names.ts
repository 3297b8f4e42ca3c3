import { NsqValidationError } from './errors.js';

const NAME = /^[.a-zA-Z0-9_-]+(#ephemeral)?$/;
const MAX_NAME_LENGTH = 64;
export const EPHEMERAL_SUFFIX = '#ephemeral';

/** nsqd's rule (internal/protocol/names.go): `^[.a-zA-Z0-9_-]+(#ephemeral)?$`, 1..64 chars including the suffix. */
export function isValidTopicName(name: string): boolean {
  return typeof name === 'string' && name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

/** Channels follow the same rule as topics. */
export const isValidChannelName = isValidTopicName;

export function isEphemeral(name: string): boolean {
  return name.endsWith(EPHEMERAL_SUFFIX);
}

function describe(kind: string, name: unknown): string {
  return (
    `${kind} name ${JSON.stringify(name)} is not valid: use 1-${MAX_NAME_LENGTH} characters from ` +
    `[.a-zA-Z0-9_-], optionally ending in "${EPHEMERAL_SUFFIX}"`
  );
}

export function assertValidTopic(name: string): void {
  if (!isValidTopicName(name)) throw new NsqValidationError('topic', describe('topic', name));
}

export function assertValidChannel(name: string): void {
  if (!isValidChannelName(name)) throw new NsqValidationError('channel', describe('channel', name));
}
