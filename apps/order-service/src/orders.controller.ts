import { BadRequestException, Body, Controller, Get, HttpCode, Inject, Injectable, NotFoundException, Param, type PipeTransform, Post } from '@nestjs/common';
import { SampleDatabase } from '../../shared/src/index.js';
import { OrderInputError, parseOrderInput, type OrderInput } from './order-input.js';
import { OrdersService, type OrderView } from './orders.service.js';
import { OutboxRelay, type OutboxRelayStats } from './outbox.relay.js';

/** Turns the body into an OrderInput, or a 400 `{statusCode, message, error, field}` naming the rule it broke. */
@Injectable()
export class OrderInputPipe implements PipeTransform<unknown, OrderInput> {
  transform(value: unknown): OrderInput {
    try {
      return parseOrderInput(value);
    } catch (err) {
      if (err instanceof OrderInputError) {
        throw new BadRequestException({ statusCode: 400, message: err.message, error: 'Bad Request', field: err.field });
      }
      throw err;
    }
  }
}

const ORDER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

@Controller()
export class OrdersController {
  constructor(
    @Inject(OrdersService) private readonly orders: OrdersService,
    @Inject(OutboxRelay) private readonly relay: OutboxRelay,
    @Inject(SampleDatabase) private readonly db: SampleDatabase,
  ) {}

  /** `{"userId":"u1","amountCents":1250}` → 201 with the order and its event id. */
  @Post('orders')
  @HttpCode(201)
  create(@Body(OrderInputPipe) input: OrderInput): Promise<OrderView> {
    return this.orders.create(input);
  }

  @Get('orders/:id')
  async find(@Param('id') id: string): Promise<OrderView> {
    const order = ORDER_ID.test(id) ? await this.orders.find(id) : undefined;
    if (!order) throw new NotFoundException(`no order ${id}`);
    return order;
  }

  /** Liveness plus the outbox backlog (events not yet acknowledged by nsqd). */
  @Get('health')
  async health(): Promise<{ status: 'ok'; database: string; outbox: { unsent: number; relay: OutboxRelayStats } }> {
    return { status: 'ok', database: this.db.type, outbox: { unsent: await this.orders.unsentEvents(), relay: this.relay.stats() } };
  }
}
