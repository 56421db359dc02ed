"""Delta Lake tables at layer locations, on ``file://`` or ``s3a://``, through Spark and Hadoop's FileSystem."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.objectstore import bucket_of, ensure_bucket
from lakehouse.settings import LAYERS, Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def table_uri(settings: Settings, layer: str, table: str) -> str:
    """Where ``layer``'s ``table`` lives, e.g. ``s3a://silver/campaigns`` or ``file:///…/lake/silver/campaigns``."""
    return f"{settings.layer_uri(layer)}/{table}"


def ensure_layers(settings: Settings) -> None:
    """Create the bucket behind every layer (S3) or nothing (local folders appear on first write)."""
    if settings.s3 is None or settings.lake_kind != "s3":
        return
    for bucket in sorted({bucket_of(settings.layer_uri(layer)) for layer in LAYERS}):
        ensure_bucket(settings.s3, bucket)


def _fs_and_path(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None, "the SparkSession has been stopped"
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def list_tables(spark: SparkSession, layer_root: str) -> list[str]:
    """Names of the Delta tables directly below ``layer_root`` (folders holding a ``_delta_log``)."""
    fs, root = _fs_and_path(spark, layer_root)
    if not fs.exists(root):
        return []
    names = []
    for status in fs.listStatus(root):
        child = status.getPath()
        if status.isDirectory() and fs.exists(child.suffix("/_delta_log")):
            names.append(str(child.getName()))
    return sorted(names)


def delete_path(spark: SparkSession, uri: str) -> None:
    """Remove ``uri`` recursively (used for probes and tests, never for layer data)."""
    fs, path = _fs_and_path(spark, uri)
    fs.delete(path, True)
