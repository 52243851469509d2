# syntax=docker/dockerfile:1.7
# The detector on NVIDIA GPUs: onnxruntime-node with its CUDA execution provider, on a CUDA + cuDNN runtime base.
# Build from the repository root:
#   docker build -f docker/detector-gpu.Dockerfile -t ndt/detector:gpu .
# Same stages and runtime contract as docker/service.Dockerfile with APP=detector (the CPU variant); the differences:
#   - deps: onnxruntime-node's own install script fetches the CUDA 12 provider libraries (NuGet
#     Microsoft.ML.OnnxRuntime.Gpu.Linux, same version as the package) — this is where the network exists;
#     the repository's .npmrc skips that download everywhere else;
#   - runtime: nvidia/cuda cudnn-runtime (onnxruntime 1.2x/1.3x CUDA 12 builds need cuDNN 9), with the node binary
#     copied from the pinned Node image. The GPU node group's NVIDIA device plugin provides the driver.

ARG NODE_IMAGE=node:22.23.4-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM ${NODE_IMAGE} AS node

# ---- manifests: only what npm ci reads
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN find . -type f ! -name package.json ! -name package-lock.json ! -name .npmrc -delete \
 && find . -depth -type d -empty -delete

# ---- deps: production dependencies, then the CUDA provider for onnxruntime-node
FROM ${NODE_IMAGE} AS deps
ARG APP=detector
WORKDIR /app
COPY --from=manifests /src ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --workspace "apps/${APP}" --include-workspace-root=false --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@ndt \
 && mkdir -p "apps/${APP}/node_modules"
# ONNXRUNTIME_NODE_INSTALL takes precedence over .npmrc's onnxruntime-node-install=skip (script/install-utils.js).
RUN cd node_modules/onnxruntime-node \
 && ONNXRUNTIME_NODE_INSTALL=cuda12 node script/install.js \
 && test -f bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so \
 && test -f bin/napi-v6/linux/x64/libonnxruntime_providers_shared.so

# ---- build: identical to the CPU variant
FROM ${NODE_IMAGE} AS build
ARG APP=detector
WORKDIR /src
COPY --from=manifests /src ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN node_modules/.bin/tsx tools/delivery/build.ts "${APP}" \
 && mkdir -p /out \
 && cp -a "apps/${APP}" /out/app \
 && rm -rf /out/app/src /out/app/test /out/app/node_modules

# ---- runtime on CUDA
FROM ${CUDA_IMAGE} AS runtime
ARG APP=detector
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production \
    HOME=/tmp \
    PORT=8080 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/apps/${APP}/node_modules ./apps/${APP}/node_modules
COPY --from=build /out/app ./apps/${APP}
WORKDIR /app/apps/${APP}
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--enable-source-maps", "--initial-old-space-size=128", "dist/server.js"]
