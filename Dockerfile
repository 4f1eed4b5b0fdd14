# syntax=docker/dockerfile:1
# Build stage: install everything and compile TypeScript.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci
COPY tsconfig.json tsconfig.ui.json ./
COPY src ./src
COPY scripts ./scripts
COPY test ./test
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

# Run stage: production dependencies and compiled JavaScript only, as a non-root user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0
# Tensors come and go in multi-MiB buffers: allocate those with mmap so that freeing one
# returns it to the system, and keep glibc from growing an arena per worker thread. Without
# this RSS stays near its high-water mark (the load test runs with the same settings).
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072
WORKDIR /app
COPY --from=build --chown=node:node /app/package.json ./
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist/src ./dist/src
# The report page (/ui), bundled at build.
COPY --from=build --chown=node:node /app/dist/ui ./dist/ui
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# The V8 flags of src/http/node-flags.ts (SERVER_NODE_FLAGS), which says why.
CMD ["node", "--initial-old-space-size=128", "dist/src/http/server.js"]
