# syntax=docker/dockerfile:1.7
# Every service's image, one file for all (the services share their layout: apps/<app>/src/server.ts, workspace
# package @ndt/<app>). Build from the repository root (the context must be the root: workspaces + lockfile):
#   docker build -f docker/service.Dockerfile --build-arg APP=gateway -t ndt/gateway .
# Stages: manifests → deps (production node_modules only) → build (esbuild bundle) → runtime (node, UID 10001).
# Runtime contract: read-only root filesystem (the pod mounts an emptyDir at /tmp, the only path written), node is
# PID 1 and the service handles SIGTERM/SIGINT itself (@ndt/kit runService: readiness fails, drain, exit).

# Pinned Node 22 LTS on Debian bookworm (glibc: onnxruntime-node and sharp ship glibc binaries). Dependabot bumps it.
ARG NODE_IMAGE=node:22.23.4-bookworm-slim

# ---- manifests: only what npm ci reads, so dependency layers stay cached when only source changes
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN find . -type f ! -name package.json ! -name package-lock.json ! -name .npmrc -delete \
 && find . -depth -type d -empty -delete

# ---- deps: the production dependencies of this app and the workspace packages it imports, nothing else.
# .npmrc (onnxruntime-node-install=skip) comes along; install scripts are not needed (prebuilt optional packages).
FROM ${NODE_IMAGE} AS deps
ARG APP
RUN test -n "${APP}" && test "${APP}" = "$(basename "${APP}")" \
 || { echo "build with --build-arg APP=<gateway|auth|files|reports|detector|migrations>" >&2; exit 1; }
WORKDIR /app
COPY --from=manifests /src ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --workspace "apps/${APP}" --include-workspace-root=false --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@ndt \
 && mkdir -p "apps/${APP}/node_modules" \
 # reports reads two weights of each Noto font (apps/reports/src/fonts.ts): the other weights are ~45 MB of image
 && if [ -d node_modules/@expo-google-fonts ]; then \
      find node_modules/@expo-google-fonts -name '*.ttf' ! -name '*_400Regular.ttf' ! -name '*_700Bold.ttf' -delete; \
    fi

# ---- build: full install (dev tools), then bundle src/server.ts + @ndt/* workspace source into dist/server.js.
# No compiler runs when the container starts.
FROM ${NODE_IMAGE} AS build
ARG APP
WORKDIR /src
COPY --from=manifests /src ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN node_modules/.bin/tsx tools/delivery/build.ts "${APP}" \
 && mkdir -p /out/sql \
 && cp -a "apps/${APP}" /out/app \
 && rm -rf /out/app/src /out/app/test /out/app/node_modules \
 && if [ "${APP}" = migrations ]; then \
      for dir in apps/*/migrations; do service="$(basename "$(dirname "$dir")")"; \
        mkdir -p "/out/sql/${service}" && cp -a "$dir" "/out/sql/${service}/"; done; \
    fi

# ---- runtime
FROM ${NODE_IMAGE} AS runtime
ARG APP
ENV NODE_ENV=production \
    HOME=/tmp \
    PORT=8080
WORKDIR /app
# Owned by root, read-only to the service user: the code cannot be rewritten at run time.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/apps/${APP}/node_modules ./apps/${APP}/node_modules
COPY --from=build /out/app ./apps/${APP}
# The migrations Job finds every service's SQL beside itself (apps/<service>/migrations); empty for other apps.
COPY --from=build /out/sql ./apps/
WORKDIR /app/apps/${APP}
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--enable-source-maps", "dist/server.js"]
