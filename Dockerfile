# The shop's one binary; each function is deployed as its own Dapr app by
# FUNCTIONS (see deploy/k8s). Static, non-root, no shell.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/shop ./cmd/shop

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/shop /shop
USER 65532:65532
ENTRYPOINT ["/shop"]
CMD ["serve"]
