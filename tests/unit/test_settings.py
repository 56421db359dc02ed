"""Settings: defaults, standard variables, .env layering, layer locations, and no secret ever shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lakehouse.errors import ConfigurationError
from lakehouse.settings import MASK, S3Settings, Secret, describe, load_settings

S3_ENV = {
    "LAKEHOUSE_LAKE_URI": "s3a://",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    "AWS_ACCESS_KEY_ID": "minioadmin",
    "AWS_SECRET_ACCESS_KEY": "s3-secret-value-xyz",
    "PGHOST": "db.internal",
    "PGPASSWORD": "pg-secret-value-abc",
}
SECRETS = ("s3-secret-value-xyz", "pg-secret-value-abc")


def test_defaults_are_a_local_lake_and_embedded_postgres(tmp_path: Path) -> None:
    settings = load_settings({}, dotenv_path=None, base_dir=tmp_path)

    assert settings.data_dir == tmp_path / "lakehouse_data"
    assert settings.lake_uri == (tmp_path / "lakehouse_data" / "lake").as_uri()
    assert settings.lake_kind == "local"
    assert settings.uses_embedded_postgres
    assert settings.s3 is None
    assert settings.spark_master == "local[*]"
    assert settings.layer_uri("silver") == (tmp_path / "lakehouse_data" / "lake" / "silver").as_uri()


def test_any_libpq_variable_selects_an_external_postgres(tmp_path: Path) -> None:
    settings = load_settings({"PGHOST": "db", "PGUSER": "dbt_user"}, dotenv_path=None, base_dir=tmp_path)

    assert settings.postgres is not None
    assert (settings.postgres.host, settings.postgres.port) == ("db", 5432)
    assert settings.postgres.database == "dbt_user"  # libpq's default: the user name
    assert settings.postgres.password is None


def test_bare_s3a_uri_gives_a_bucket_per_layer(tmp_path: Path) -> None:
    settings = load_settings(S3_ENV, dotenv_path=None, base_dir=tmp_path)

    assert settings.lake_kind == "s3"
    assert [settings.layer_uri(layer) for layer in ("bronze", "silver", "quarantine")] == [
        "s3a://bronze",
        "s3a://silver",
        "s3a://quarantine",
    ]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3a://test-{layer}/", "s3a://test-silver"),
        ("s3a://one-bucket/lake", "s3a://one-bucket/lake/silver"),
    ],
)
def test_layer_templates_and_prefixes(tmp_path: Path, uri: str, expected: str) -> None:
    settings = load_settings(S3_ENV | {"LAKEHOUSE_LAKE_URI": uri}, dotenv_path=None, base_dir=tmp_path)

    assert settings.layer_uri("silver") == expected


def test_unknown_layer_is_refused(tmp_path: Path) -> None:
    settings = load_settings({}, dotenv_path=None, base_dir=tmp_path)

    with pytest.raises(ConfigurationError, match="unknown lake layer 'gold'"):
        settings.layer_uri("gold")


def test_s3a_lake_without_credentials_names_the_missing_variables(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        load_settings({"LAKEHOUSE_LAKE_URI": "s3a://"}, dotenv_path=None, base_dir=tmp_path)


@pytest.mark.parametrize(
    "s3",
    [
        S3Settings("http://127.0.0.1:9000", "minioadmin", Secret("s3-secret-value-xyz")),
        S3Settings(None, "AKIAEXAMPLE", Secret("s3-secret-value-xyz"), region="eu-west-1"),
    ],
)
def test_aws_env_is_read_back_as_the_same_s3_settings(tmp_path: Path, s3: S3Settings) -> None:
    settings = load_settings({"LAKEHOUSE_LAKE_URI": "s3a://"} | s3.aws_env(), dotenv_path=None, base_dir=tmp_path)

    assert settings.s3 == s3


@pytest.mark.parametrize("uri", ["s3://bucket/x", "hdfs://nn/x"])
def test_unsupported_lake_schemes_are_refused(tmp_path: Path, uri: str) -> None:
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_LAKE_URI"):
        load_settings({"LAKEHOUSE_LAKE_URI": uri}, dotenv_path=None, base_dir=tmp_path)


def test_malformed_number_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PGPORT must be a whole number, got 'five'"):
        load_settings({"PGPORT": "five"}, dotenv_path=None, base_dir=tmp_path)


def test_environment_wins_over_dotenv_and_empty_values_are_unset(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("LAKEHOUSE_SPARK_MASTER=local[1]\nPGHOST=from-dotenv\nLAKEHOUSE_DATA_DIR=d\n")

    settings = load_settings({"PGHOST": "from-env", "LAKEHOUSE_DATA_DIR": ""}, dotenv_path=dotenv, base_dir=tmp_path)

    assert settings.spark_master == "local[1]"
    assert settings.postgres is not None
    assert settings.postgres.host == "from-env"
    assert settings.data_dir == tmp_path / "d"


def test_relative_paths_resolve_against_the_base_dir_not_the_cwd(tmp_path: Path) -> None:
    settings = load_settings({"LAKEHOUSE_DATA_DIR": "data"}, dotenv_path=None, base_dir=tmp_path)

    assert settings.data_dir == tmp_path / "data"


def test_no_secret_leaks_through_repr_str_format_logging_or_describe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(S3_ENV, dotenv_path=None, base_dir=tmp_path)
    logger = logging.getLogger("test.settings")

    with caplog.at_level(logging.DEBUG):
        logger.info("settings: %s", settings)
        logger.info("settings: %r", settings)
        logger.info("postgres %s s3 %s", settings.postgres, settings.s3)
    shown = "\n".join(
        [
            repr(settings),
            str(settings),
            f"{settings}",
            repr(settings.s3),
            str(settings.postgres),
            settings.postgres.endpoint if settings.postgres else "",
            settings.s3.endpoint if settings.s3 else "",
            repr(describe(settings)),
            caplog.text,
        ]
    )

    for secret in SECRETS:
        assert secret not in shown
    assert MASK in shown
    # The values are still there for the code that needs them.
    assert settings.s3 is not None
    assert settings.s3.secret_access_key.reveal() == "s3-secret-value-xyz"
    assert settings.postgres is not None
    assert settings.postgres.connect_kwargs()["password"] == "pg-secret-value-abc"


def test_secret_masks_every_formatting_path() -> None:
    secret = Secret("hunter2")

    assert "hunter2" not in f"{secret} {secret!r} {secret!s} {secret:>20} %s %r" % (secret, secret)
    assert secret.reveal() == "hunter2"


def test_retention_defaults_to_a_week(tmp_path: Path) -> None:
    settings = load_settings({}, dotenv_path=None, base_dir=tmp_path)
    tuned = load_settings({"LAKEHOUSE_RETENTION_HOURS": "24"}, dotenv_path=None, base_dir=tmp_path)

    assert (settings.retention_hours, tuned.retention_hours) == (168.0, 24.0)
    assert ("retention", "24 hours") in describe(tuned)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LAKEHOUSE_RETENTION_HOURS": "0.5"}, "retention of 0.5 hours: the safe minimum is 1 hours"),
        ({"LAKEHOUSE_RETENTION_HOURS": "nan"}, "retention of nan hours"),
        ({"LAKEHOUSE_RETENTION_HOURS": "a week"}, "LAKEHOUSE_RETENTION_HOURS must be a number of hours"),
    ],
)
def test_an_unsafe_or_malformed_retention_is_refused(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(env, dotenv_path=None, base_dir=tmp_path)


def test_publish_lock_timeout_and_attempts_are_configurable_and_checked(tmp_path: Path) -> None:
    default = load_settings({}, dotenv_path=None, base_dir=tmp_path)
    tuned = load_settings(
        {"LAKEHOUSE_LOCK_TIMEOUT_MS": "250", "LAKEHOUSE_PUBLISH_ATTEMPTS": "2"}, dotenv_path=None, base_dir=tmp_path
    )

    assert (default.lock_timeout_ms, default.publish_attempts) == (10_000, 4)
    assert (tuned.lock_timeout_ms, tuned.publish_attempts) == (250, 2)
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_PUBLISH_ATTEMPTS must be at least 1"):
        load_settings({"LAKEHOUSE_PUBLISH_ATTEMPTS": "0"}, dotenv_path=None, base_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_LOCK_TIMEOUT_MS must be a whole number"):
        load_settings({"LAKEHOUSE_LOCK_TIMEOUT_MS": "10s"}, dotenv_path=None, base_dir=tmp_path)


def test_a_spark_connect_server_is_chosen_by_its_url_its_token_stays_hidden_and_a_bad_url_is_refused(
    tmp_path: Path,
) -> None:
    assert load_settings({}, dotenv_path=None, base_dir=tmp_path).spark_remote is None
    url = "sc://spark.internal:15002/;use_ssl=true;token=connect-token-xyz"

    settings = load_settings({"LAKEHOUSE_SPARK_REMOTE": url}, dotenv_path=None, base_dir=tmp_path)

    assert settings.spark_remote is not None
    assert settings.spark_remote.reveal() == url
    assert ("spark", "Spark Connect at sc://spark.internal:15002") in describe(settings)
    assert "connect-token-xyz" not in repr(settings) + repr(describe(settings))
    with pytest.raises(
        ConfigurationError, match=r"LAKEHOUSE_SPARK_REMOTE is not a Spark Connect URL: expected sc://host:port"
    ):
        load_settings({"LAKEHOUSE_SPARK_REMOTE": "spark.internal:15002"}, dotenv_path=None, base_dir=tmp_path)


S3_KEYS = {k: v for k, v in S3_ENV.items() if k.startswith("AWS_")}


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3a://landing", "s3a://landing"),
        ("s3a://landing/", "s3a://landing"),
        ("s3a://lh-landing/daily/2024", "s3a://lh-landing/daily/2024"),
        ("s3a://lh-landing/daily//", "s3a://lh-landing/daily"),
    ],
)
def test_an_s3a_landing_uri_is_a_bucket_and_a_prefix(tmp_path: Path, uri: str, expected: str) -> None:
    settings = load_settings(S3_KEYS | {"LAKEHOUSE_LANDING_URI": uri}, dotenv_path=None, base_dir=tmp_path)

    assert settings.landing == expected
    assert settings.lake_kind == "local"  # landing on S3 does not move the lake
    assert settings.s3 is not None
    assert ("landing", expected) in describe(settings)


@pytest.mark.parametrize("variable", ["LAKEHOUSE_LANDING_URI", "LAKEHOUSE_LANDING_DIR"])
@pytest.mark.parametrize("value", ["in", "{base}/in", "file://{base}/in"])
def test_a_local_landing_folder_is_a_path_as_before(tmp_path: Path, variable: str, value: str) -> None:
    settings = load_settings({variable: value.format(base=tmp_path)}, dotenv_path=None, base_dir=tmp_path)

    assert settings.landing == settings.landing_dir == tmp_path / "in"


def test_without_a_landing_setting_it_is_the_data_dirs_folder(tmp_path: Path) -> None:
    settings = load_settings({}, dotenv_path=None, base_dir=tmp_path)

    assert settings.landing == tmp_path / "lakehouse_data" / "landing"


def test_landing_dir_is_an_alias_that_must_agree_with_landing_uri(tmp_path: Path) -> None:
    same = {"LAKEHOUSE_LANDING_URI": f"file://{tmp_path}/in", "LAKEHOUSE_LANDING_DIR": "in"}
    assert load_settings(same, dotenv_path=None, base_dir=tmp_path).landing == tmp_path / "in"

    with pytest.raises(ConfigurationError, match="LAKEHOUSE_LANDING_URI and LAKEHOUSE_LANDING_DIR disagree"):
        load_settings(
            S3_KEYS | {"LAKEHOUSE_LANDING_URI": "s3a://landing", "LAKEHOUSE_LANDING_DIR": "in"},
            dotenv_path=None,
            base_dir=tmp_path,
        )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://landing/in", "use the s3a:// scheme"),
        ("s3a:///in", "names no bucket"),
        ("s3a://Landing_Bucket/in", "not a valid bucket name"),
        ("s3a://landing/in?versionId=1", "no query or fragment"),
        ("s3a://landing/in#x", "no query or fragment"),
        ("file://otherhost/in", "a file:// URI on this host"),
        ("hdfs://nn/in", "expected a local folder, file:// or s3a:// URI"),
    ],
)
def test_a_malformed_landing_uri_is_refused_naming_the_variable(tmp_path: Path, uri: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"LAKEHOUSE_LANDING_URI=.*{message}"):
        load_settings(S3_KEYS | {"LAKEHOUSE_LANDING_URI": uri}, dotenv_path=None, base_dir=tmp_path)


def test_an_s3a_landing_without_credentials_names_the_missing_variables(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"LAKEHOUSE_LANDING_URI points at s3a://.*AWS_ACCESS_KEY_ID"):
        load_settings({"LAKEHOUSE_LANDING_URI": "s3a://landing"}, dotenv_path=None, base_dir=tmp_path)
