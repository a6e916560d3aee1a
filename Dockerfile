# The image of function-modelcache. One image, two programs:
#
#   the composition Function (the ENTRYPOINT), which Crossplane runs as the Function's pod:
#     /nodejs/bin/node /app/dist/function/main.js [--insecure] [--debug] [--address HOST:PORT] ...
#   the fetch program the prefetch Jobs run (the Job sets it as the container's command, exec form,
#   no shell; it is DEFAULT_FETCH_COMMAND in function/api/input.ts):
#     /nodejs/bin/node /app/dist/function/fetch/main.js      (reads the plan from MODELCACHE_PLAN)
#
# Build: docker build -t xpkg.crossplane.io/modelplane-ai/function-modelcache:v0.1.0 .
# Package it: crossplane xpkg build --package-root=<staged package/function> \
#   --embed-runtime-image=xpkg.crossplane.io/modelplane-ai/function-modelcache:v0.1.0
#
# CI has no image builder: test/conformance/dockerfile-replay.ts reads this file and replays its
# WORKDIR/COPY/RUN/ENV steps in a clean copy of the repository, then starts the result and calls
# it over gRPC. Keep the build stages to those instructions so the replay stays exact.

# Build stage: every dependency (TypeScript included), then the compiled Function.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY function/ function/
RUN npm run build

# Production dependencies only, without install scripts.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Runtime: distroless Node.js 20 (no shell, no package manager). Files are root-owned and
# world-readable; the process runs as uid/gid 2000, as Crossplane runs Function pods and as the
# prefetch Job's securityContext asks (runAsUser 2000, read-only root filesystem).
FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/package.json ./
COPY --from=deps /app/node_modules/ node_modules/
COPY --from=build /app/dist/function/ dist/function/
USER 2000:2000
EXPOSE 9443
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/function/main.js"]
