# One image for the three Node apps of the sample (apps/broker, apps/order-service,
# apps/points-service); docker-compose.yml picks the app with `command`.
#
# `npm install` rather than `npm ci`: npm 11 writes a lockfile that its own `npm ci` rejects (it
# lists only one platform's @unrs/resolver-binding-* optional packages, then demands all of them;
# see .ci/run). With the lockfile present, `npm install` installs exactly the locked versions.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY libs libs
COPY apps apps
RUN npx tsc -p tsconfig.build.json

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist dist
# the apps' embedded defaults write to ./.data; the compose file mounts volumes at /data
RUN mkdir -p /app/.data /data && chown node:node /app/.data /data
USER node
EXPOSE 3000 3001 4150 4151 4160 4161 4170
CMD ["node", "dist/apps/broker/src/main.js", "--data-path=/data/broker", "--mem-queue-size=0"]
