import { Controller, Inject, Logger } from '@nestjs/common';
import { Ctx, EventPattern, Payload, RpcException } from '@nestjs/microservices';
import { NSQ_TRANSPORT, type NsqContext } from '../../../libs/nest-nsq/src/index.js';
import { InvalidOrderEventError, NOTIFICATIONS_CHANNEL, ORDER_CREATED, parseOrderCreated, type OrderCreated } from './order-created.js';
import { PointsService } from './points.service.js';

/**
 * The NSQ side of points-service. Both handlers get every `order.created` message, each on its
 * own channel: `points` (the server's default channel) awards, `notifications` records a
 * notification. Resolving finishes the message (FIN); throwing requeues it with backoff, and
 * after maxAttempts it goes to the dead-letter topic `order.created.dead`.
 */
@Controller()
export class OrderEventsController {
  private readonly logger = new Logger(OrderEventsController.name);

  constructor(@Inject(PointsService) private readonly points: PointsService) {}

  @EventPattern<string>(ORDER_CREATED, NSQ_TRANSPORT)
  async award(@Payload() data: unknown, @Ctx() ctx: NsqContext): Promise<void> {
    const event = this.parse(data, ctx);
    if ((await this.points.award(event)) === 'duplicate') {
      this.logger.debug(`event ${event.eventId} (message ${ctx.getId()}, attempt ${ctx.getAttempts()}) was awarded before: finished without awarding again`);
    }
  }

  @EventPattern<string>(ORDER_CREATED, NSQ_TRANSPORT, { channel: NOTIFICATIONS_CHANNEL })
  async notify(@Payload() data: unknown, @Ctx() ctx: NsqContext): Promise<void> {
    const event = this.parse(data, ctx);
    await this.points.notify(event);
  }

  private parse(data: unknown, ctx: NsqContext): OrderCreated {
    try {
      return parseOrderCreated(data);
    } catch (err) {
      if (!(err instanceof InvalidOrderEventError)) throw err;
      this.logger.error(`${ctx.getTopic()}/${ctx.getChannel()} message ${ctx.getId()}: ${err.message}`);
      // RpcException keeps the text in the dead letter's dead-letter-error header
      throw new RpcException(err.message);
    }
  }
}
