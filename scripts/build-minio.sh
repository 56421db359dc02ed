#!/usr/bin/env bash
# Build the pinned MinIO server into the cache (MinIO ships source only; its Docker Hub images are gone).
# Prints the binary's path. A cached build is reused; needs Go 1.24+ and the Go module proxy.
set -euo pipefail

# The module proxy serves only the archived repository's final commit, not its RELEASE tags.
MINIO_MODULE_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
CACHE_DIR="${LAKEHOUSE_CACHE_DIR:-$HOME/.cache/lakehouse}"
BIN_DIR="$CACHE_DIR/minio/$MINIO_MODULE_VERSION"

if [ -x "$BIN_DIR/minio" ]; then
  echo "$BIN_DIR/minio"
  exit 0
fi
command -v go >/dev/null || { echo "build-minio: Go is not installed (https://go.dev/dl/)" >&2; exit 1; }
echo "build-minio: building github.com/minio/minio@$MINIO_MODULE_VERSION (first time only, a few minutes)" >&2
mkdir -p "$BIN_DIR"
GOBIN="$BIN_DIR" GOFLAGS="-trimpath" go install "github.com/minio/minio@$MINIO_MODULE_VERSION" >&2
echo "$BIN_DIR/minio"
