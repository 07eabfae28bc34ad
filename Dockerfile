# The service image: `npm start`'s process, with Redis and Postgres as services of their own
# (see docker-compose.yml). TypeScript runs through tsx, as in development: there is no build step.
FROM node:20-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

COPY package.json package-lock.json ./
# --ignore-scripts: the package's postinstall adds Debian's redis-server and embedded-postgres
# hydrates its binaries, both only for the zero-setup mode (REDIS_URL / DATABASE_URL unset), which a
# container does not use. Native add-ons that matter ship prebuilt in their platform packages.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

COPY . .
# The one postinstall step a container needs: patches/ fixes postgres.js's crash when a connection
# is cut with a write pending (README, "Faults").
RUN npx patch-package

USER node
ENV PORT=3000
EXPOSE 3000

# node runs the service directly (not through npm, which does not pass SIGTERM on), so a stop
# drains the workers gracefully; main.ts exits within 10 s of SIGTERM.
CMD ["node", "--import", "tsx", "src/main.ts"]
