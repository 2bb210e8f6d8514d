# Ostiary as a container image: a static binary (CGO_ENABLED=0, no libc) on
# distroless/static, running as the unprivileged user 65532, its data
# directory a volume.
#
#   make image                                   # docker build -t ostiary:dev .
#   docker run --rm -v ostiary-data:/data ostiary:dev init --data /data
#   docker run -v ostiary-data:/data -v "$PWD/certs:/certs:ro" -p 8443:8443 ostiary:dev
#
# Off loopback Ostiary serves HTTPS only: give it a certificate and key
# (OSTIARY_TLS_CERT and OSTIARY_TLS_KEY below; the key file mode 0600 and
# readable by uid 65532). compose.yaml runs the demo this way.

# The build stage: 'make static' is the very build CI runs (.ci/run), so
# the flags the image is built with are checked on every change.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make static STATIC_BIN=/out/ostiary && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ostiary /ostiary
# The data directory (store, keys, audit log): a volume owned by the
# server's user. Back it up; losing keys/ makes existing API keys
# unverifiable.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME ["/data"]
USER 65532:65532
ENV OSTIARY_DATA=/data \
    OSTIARY_LISTEN=0.0.0.0:8443 \
    OSTIARY_TLS_CERT=/certs/cert.pem \
    OSTIARY_TLS_KEY=/certs/key.pem
EXPOSE 8443
ENTRYPOINT ["/ostiary"]
CMD ["serve"]
