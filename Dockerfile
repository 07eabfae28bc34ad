# The service image: compiled JavaScript (`npm run build` → dist/), with Redis and Postgres as
# services of their own (see docker-compose.yml).

# Build: the full dependency tree (TypeScript) compiles src/ into dist/.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the package's postinstall adds Debian's redis-server and embedded-postgres
# hydrates its binaries, both only for the zero-setup mode, which a container does not use;
# `prepare` (the build) needs the sources, copied next.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Run: production dependencies only. --omit=optional leaves out the embedded Postgres (about 60 MB,
# an optional dependency loaded only when DATABASE_URL is unset) and other optional native add-ons,
# all of which have pure-JavaScript fallbacks.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force
# The one postinstall step a container needs: patches/ fixes postgres.js's crash when a connection
# is cut with a write pending (README, "Faults").
COPY patches ./patches
RUN npx patch-package
COPY --from=build /app/dist ./dist
# Migrations are read at start-up (dist/db/migrate.js looks in ../../drizzle).
COPY drizzle ./drizzle

USER node
ENV PORT=3000
# The V8 heap bound (src/config.ts serviceHeapMiB: 128 + 64 per bulk slot, for the default
# BULK_CONCURRENCY of 2), so that the process collects garbage instead of growing, and the young
# generation's size (SERVICE_SEMI_SPACE_MIB), so that short-lived objects die young (README "Heavy use").
ENV NODE_OPTIONS="--max-old-space-size=256 --max-semi-space-size=16"
EXPOSE 3000

# node runs the service directly (not through npm, which does not pass SIGTERM on), so a stop
# drains the workers gracefully; it exits within 10 s of SIGTERM. The command line is
# `node dist/cli.js …` (e.g. `docker compose exec app node dist/cli.js status <job_id>`).
CMD ["node", "dist/main.js"]
