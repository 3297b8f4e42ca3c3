import { createHash, timingSafeEqual } from 'node:crypto';
import {
  Catch,
  Controller,
  Get,
  Header,
  Inject,
  Injectable,
  Param,
  Query,
  UnauthorizedException,
  UseFilters,
  UseGuards,
} from '@nestjs/common';
import type { ArgumentsHost, CanActivate, ExceptionFilter, ExecutionContext } from '@nestjs/common';
import type { HistoryCounts, HistorySearchParams, HistorySearchResult } from '../../../../libs/message-history/src/index.js';
import { HistoryQueryError } from '../../../../libs/message-history/src/index.js';
import { BROKER_CONFIG } from '../broker.tokens.js';
import type { BrokerConfig } from '../flags.js';
import { AdminService, type AdminHealth, type AdminTopic } from './admin.service.js';
import { ADMIN_PAGE_HTML } from './page.js';

/** The parts of Express's request and response this file reads; Express's types are not a dependency. */
interface HttpRequest {
  headers: Record<string, string | string[] | undefined>;
  query: Record<string, unknown>;
}
interface HttpResponse {
  status(code: number): HttpResponse;
  json(body: unknown): void;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/**
 * `--admin-token`: every /api request carries `Authorization: Bearer <token>` (or `?token=`).
 * Compared through digests in constant time, so the comparison leaks neither content nor length.
 */
@Injectable()
export class AdminTokenGuard implements CanActivate {
  private readonly expected: Buffer | undefined;

  constructor(@Inject(BROKER_CONFIG) config: BrokerConfig) {
    this.expected = config.admin.token === undefined ? undefined : sha256(config.admin.token);
  }

  canActivate(context: ExecutionContext): boolean {
    if (this.expected === undefined) return true;
    const req = context.switchToHttp().getRequest<HttpRequest>();
    const header = req.headers.authorization;
    let given: string | undefined;
    if (typeof header === 'string') given = /^Bearer\s+(.+)$/i.exec(header.trim())?.[1];
    if (given === undefined && typeof req.query.token === 'string') given = req.query.token;
    if (given === undefined) throw new UnauthorizedException('this broker requires an admin token: send Authorization: Bearer <token>');
    if (!timingSafeEqual(sha256(given), this.expected)) throw new UnauthorizedException('wrong admin token');
    return true;
  }
}

/** A bad query parameter → 400 naming it (HistoryQueryError carries the parameter). */
@Catch(HistoryQueryError)
export class HistoryQueryErrorFilter implements ExceptionFilter<HistoryQueryError> {
  catch(err: HistoryQueryError, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<HttpResponse>();
    res.status(err.statusCode).json({ statusCode: err.statusCode, message: err.message, error: 'Bad Request', ...(err.parameter ? { parameter: err.parameter } : {}) });
  }
}

const SEARCH_PARAMETERS = ['topic', 'channel', 'status', 'from', 'to', 'body', 'messageKey', 'limit', 'cursor', 'token'] as const;
const COUNT_PARAMETERS = ['from', 'to', 'token'] as const;

/** Query parameters as single strings: a repeated or unknown parameter is a 400, not a silent pick. */
function single<K extends string>(query: Record<string, unknown>, allowed: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const [name, value] of Object.entries(query)) {
    if (!(allowed as readonly string[]).includes(name)) {
      throw new HistoryQueryError(`unknown query parameter "${name}" (expected one of ${allowed.filter((a) => a !== 'token').join(', ')})`, name);
    }
    if (typeof value !== 'string') throw new HistoryQueryError(`query parameter "${name}" must be given once, as a plain value`, name);
    out[name as K] = value;
  }
  return out;
}

/** The token guards the API only: the page holds no data and must load to ask for the token. */
@Controller()
@UseFilters(HistoryQueryErrorFilter)
export class AdminController {
  constructor(@Inject(AdminService) private readonly admin: AdminService) {}

  /** The page holds no data; it calls the API (with the token it was opened with). */
  @Get()
  @Header('content-type', 'text/html; charset=utf-8')
  @Header('cache-control', 'no-store')
  @Header('content-security-policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
  page(): string {
    return ADMIN_PAGE_HTML;
  }

  @Get('api/health')
  @UseGuards(AdminTokenGuard)
  health(): AdminHealth {
    return this.admin.health();
  }

  @Get('api/topics')
  @UseGuards(AdminTokenGuard)
  topics(): { at: string; topics: AdminTopic[] } {
    return this.admin.topics();
  }

  @Get('api/messages')
  @UseGuards(AdminTokenGuard)
  search(@Query() query: Record<string, unknown>): Promise<HistorySearchResult> {
    const q = single(query, SEARCH_PARAMETERS);
    const params: HistorySearchParams = {};
    if (q.topic !== undefined) params.topic = q.topic;
    if (q.channel !== undefined) params.channel = q.channel;
    if (q.status !== undefined) params.status = q.status;
    if (q.from !== undefined) params.from = q.from;
    if (q.to !== undefined) params.to = q.to;
    if (q.body !== undefined) params.bodyContains = q.body;
    if (q.messageKey !== undefined) params.messageKey = q.messageKey;
    if (q.limit !== undefined) params.limit = q.limit;
    if (q.cursor !== undefined) params.cursor = q.cursor;
    return this.admin.search(params);
  }

  @Get('api/messages/:id')
  @UseGuards(AdminTokenGuard)
  message(@Param('id') id: string, @Query() query: Record<string, unknown>): Promise<unknown> {
    const q = single(query, ['nsqd', 'token'] as const);
    return this.admin.message(id, q.nsqd);
  }

  @Get('api/counts')
  @UseGuards(AdminTokenGuard)
  counts(@Query() query: Record<string, unknown>): Promise<HistoryCounts> {
    const q = single(query, COUNT_PARAMETERS);
    const params: { from?: string; to?: string } = {};
    if (q.from !== undefined) params.from = q.from;
    if (q.to !== undefined) params.to = q.to;
    return this.admin.counts(params);
  }
}
