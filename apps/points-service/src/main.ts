import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { runHttpService, startClientHistory } from '../../shared/src/index.js';
import { channelsToProvision } from './order-created.js';
import { provisionChannels } from './channels.js';
import { pointsServiceConfigFromEnv, SERVICE_NAME } from './config.js';
import { createNsqServer } from './nsq-server.js';
import { PointsServiceModule } from './points-service.module.js';

runHttpService(SERVICE_NAME, async (logger) => {
  const config = pointsServiceConfigFromEnv(process.env);
  const history = config.history ? await startClientHistory(config.history, SERVICE_NAME, logger) : undefined;
  const app = await NestFactory.create(PointsServiceModule.forRoot(config, history), { logger, abortOnError: false, forceCloseConnections: true });
  app.connectMicroservice({ strategy: createNsqServer(config, history?.hooks) }, { inheritAppConfig: true });
  return {
    app,
    address: config.address,
    beforeListen: async () => {
      if (config.lookupdHTTPAddresses) {
        const { topic, channels } = channelsToProvision;
        await provisionChannels(config.lookupdHTTPAddresses, topic, channels, new Logger('channels'));
      }
      await app.startAllMicroservices();
    },
  };
});
