import { BadRequestException, Controller, Get, Inject, Param } from '@nestjs/common';
import { SampleDatabase } from '../../shared/src/index.js';
import { USER_ID_PATTERN } from './order-created.js';
import { PointsService, type UserPointsView } from './points.service.js';

@Controller()
export class PointsController {
  constructor(
    @Inject(PointsService) private readonly points: PointsService,
    @Inject(SampleDatabase) private readonly db: SampleDatabase,
  ) {}

  /** A user's points (0 for a user with no orders yet). */
  @Get('users/:id/points')
  pointsOf(@Param('id') id: string): Promise<UserPointsView> {
    if (!USER_ID_PATTERN.test(id)) {
      throw new BadRequestException({ statusCode: 400, message: 'the user id must be 1-64 characters of letters, digits, ".", "_", ":" or "-"', error: 'Bad Request', field: 'id' });
    }
    return this.points.pointsOf(id);
  }

  /** Liveness plus how many events each channel has handled. */
  @Get('health')
  async health(): Promise<{ status: 'ok'; database: string; awards: number; notifications: number }> {
    return { status: 'ok', database: this.db.type, ...(await this.points.counts()) };
  }
}
