import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { runHttpService, startClientHistory } from '../../shared/src/index.js';
import { orderServiceConfigFromEnv, SERVICE_NAME } from './config.js';
import { OrderServiceModule } from './order-service.module.js';

runHttpService(SERVICE_NAME, async (logger) => {
  const config = orderServiceConfigFromEnv(process.env);
  const history = config.history ? await startClientHistory(config.history, SERVICE_NAME, logger) : undefined;
  const app = await NestFactory.create(OrderServiceModule.forRoot(config, history), { logger, abortOnError: false, forceCloseConnections: true });
  return { app, address: config.address };
});
