import { Logger } from '@nestjs/common';
import type { NsqLogger } from '../../nsq/src/index.js';

/**
 * libs/nsq logs through the NsqLogger interface and knows nothing of Nest; this adapter sends its
 * lines to Nest's Logger, so they share the app's format and log levels.
 */
export class NestNsqLogger implements NsqLogger {
  private readonly logger: Logger;

  constructor(context: string) {
    this.logger = new Logger(context);
  }

  debug(message: string): void {
    this.logger.debug(message);
  }
  info(message: string): void {
    this.logger.log(message);
  }
  warn(message: string): void {
    this.logger.warn(message);
  }
  error(message: string): void {
    this.logger.error(message);
  }
}
