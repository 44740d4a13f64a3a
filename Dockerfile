# souk: multi-stage image on Debian 12 slim.
# The build stage uses the same scripts as the README (scripts/setup installs
# the build dependencies, scripts/test builds and runs every test), so the
# image is only produced from a tree whose tests pass.
FROM debian:12-slim AS build
WORKDIR /src
COPY . .
RUN ./scripts/setup \
 && FUZZ_SECONDS=10 ./scripts/test \
 && strip build/souk

FROM debian:12-slim
# Runtime libraries only (the -dev packages stay in the build stage).
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      libzmq5 libczmq4 libmsgpackc2 libwebsockets17 libcurl4 libsqlite3-0 libjansson4 \
      libssl3 libstemmer0d wordnet-base ca-certificates curl \
      libpocketsphinx3 pocketsphinx-en-us libopusfile0 libsoxr0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/souk --create-home --shell /usr/sbin/nologin souk
COPY --from=build /src/build/souk /usr/local/bin/souk
COPY --from=build /src/data /usr/share/souk/data
USER souk
WORKDIR /var/lib/souk
# Cloud Run sets PORT; souk honours it when SOUK_PORT is unset.
ENV SOUK_DATA=/var/lib/souk/data PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${SOUK_PORT:-${PORT:-8080}}/healthz" || exit 1
# souk serve is PID 1: it handles SIGTERM itself (drain, stop children, exit 0)
# and reaps its children (and any orphan handed to PID 1). Its drain
# (SOUK_DRAIN_MS, 5 s) fits Docker's 10 s and Cloud Run's 10 s stop timeouts.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/souk"]
CMD ["serve"]
