"""MinIO and PostgreSQL in throwaway containers (testcontainers), for machines with a Docker engine."""

from __future__ import annotations

from typing import Any

from lakehouse.errors import ServiceUnavailableError
from lakehouse.settings import PostgresSettings, S3Settings, Secret

# Docker Hub's MinIO images were deleted; quay.io still serves the last release. Pinned by tag and digest (the
# multi-platform index), as in docker-compose.yml.
MINIO_IMAGE = (
    "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
    "@sha256:14cea493d9a34af32f524e538b8346cf79f3321eff8e708c1e2960462bd8936e"
)
POSTGRES_IMAGE = "postgres:17.6-bookworm@sha256:f3bd19c606e442c3d7bdfa8002e03fe260a1023351e0ea4598032022b68dd6e3"


def docker_available() -> bool:
    """True when a Docker engine answers a ping (the client alone is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


class MinioContainerService:
    """A MinIO container; ``start()`` yields its S3 settings."""

    def __init__(self, *, access_key: str = "minioadmin", secret_key: str = "minioadmin123") -> None:
        self._access_key = access_key
        self._secret_key = Secret(secret_key)
        self._container: Any = None

    def start(self) -> S3Settings:
        from testcontainers.minio import MinioContainer

        container = MinioContainer(image=MINIO_IMAGE, access_key=self._access_key, secret_key=self._secret_key.reveal())
        try:
            container.start()
        except Exception as exc:
            raise ServiceUnavailableError("MinIO container", MINIO_IMAGE, str(exc)) from exc
        self._container = container
        host = container.get_container_host_ip()
        port = container.get_exposed_port(container.port)
        return S3Settings(
            endpoint_url=f"http://{host}:{port}",
            access_key_id=self._access_key,
            secret_access_key=self._secret_key,
        )

    def stop(self) -> None:
        if self._container is not None:
            self._container.stop()
            self._container = None


class PostgresContainerService:
    """A PostgreSQL container; ``start()`` yields its connection settings."""

    def __init__(self, *, user: str = "dbt_user", password: str = "dbt_password") -> None:
        self._user = user
        self._password = Secret(password)
        self._container: Any = None

    def start(self) -> PostgresSettings:
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer(
            image=POSTGRES_IMAGE,
            username=self._user,
            password=self._password.reveal(),
            dbname="campaign_analytics",
            driver=None,
        )
        try:
            container.start()
        except Exception as exc:
            raise ServiceUnavailableError("PostgreSQL container", POSTGRES_IMAGE, str(exc)) from exc
        self._container = container
        return PostgresSettings(
            host=container.get_container_host_ip(),
            port=int(container.get_exposed_port(5432)),
            user=self._user,
            database="campaign_analytics",
            password=self._password,
        )

    def stop(self) -> None:
        if self._container is not None:
            self._container.stop()
            self._container = None
