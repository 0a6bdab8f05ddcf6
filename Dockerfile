# Capstan's image. Build: `docker build -t capstan:dev .` (needs the npm registry during the build).
# Offline/lab: swarm/build-capstan-image.sh builds this same file against a locally imported base image.
#
# Stages: deps (production node_modules only) and build (all deps + tsc) run in parallel under BuildKit;
# the runtime stage gets dist/src, schemas/, package.json and the production node_modules, nothing else.
ARG NODE_IMAGE=node:26-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# Set by swarm/build-capstan-image.sh where TLS to the registry goes through a proxy with its own CA;
# an ARG (not ENV) so it never reaches the runtime image.
ARG NODE_EXTRA_CA_CERTS
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS build
WORKDIR /app
ARG NODE_EXTRA_CA_CERTS
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY schemas schemas
COPY src src
RUN npm run build

FROM ${NODE_IMAGE}
# A 1 MiB young generation: V8 otherwise grows it to about 13 MiB during start-up and keeps it; measured 90 MiB
# idle instead of 100 and a lower peak, at the same describe rate (README, Benchmarks).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=1 \
    CAPSTAN_LISTEN=0.0.0.0:8640
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY package.json ./
COPY schemas schemas
COPY --from=build /app/dist/src dist/src
# Files stay root-owned and read-only for the process. USER node is the default for `docker run` without
# a socket; talking to dockerd needs access to its root-owned socket (root:docker 0660), so stack.yml runs the
# service as root (see there why the socket's group is not used instead).
USER node
EXPOSE 8640
# No curl in the slim image: node itself asks /healthz. The port follows CAPSTAN_LISTEN; HTTPS when
# CAPSTAN_TLS_CERT_FILE is set (over loopback, without checking the certificate).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const p=(process.env.CAPSTAN_LISTEN||'').split(':').pop()||'8640';const s=process.env.CAPSTAN_TLS_CERT_FILE?'https':'http';require(s).get(s+'://127.0.0.1:'+p+'/healthz',{rejectUnauthorized:false,timeout:4000},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve"]
