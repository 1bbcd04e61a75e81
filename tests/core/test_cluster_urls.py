"""URLs naming several servers, and the pooler setting a URL may carry.

MySQL/MariaDB drivers take one host, so checkpoint_sql tries the hosts a URL lists
(``?host=a:3306&host=b:3306``) in order; PostgreSQL's are libpq's to try. Through a
transaction pooler, psycopg's prepared statements are turned off with
``prepare_threshold=none``, which the CLI can only say in the URL.
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from checkpoint_sql import ConfigurationError, SQLSaver
from tests.conftest import SERVER_URLS, require

CLOSED_PORT = 25499
"""In the cluster tests' private range, where nothing listens outside them."""


def test_a_mysql_url_listing_several_hosts_skips_the_one_that_refuses() -> None:
    require("mysql")
    shared = make_url(SERVER_URLS["mysql"])
    url = f"mysql://root@/{shared.database}?host=127.0.0.1:{CLOSED_PORT}&host={shared.host}:{shared.port or 3306}"
    with SQLSaver.from_conn_string(url) as saver, saver.db.sync_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT @@port").scalar() == (shared.port or 3306)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@db1/test?host=db2:3306", "both before the path and as host="),
        ("mysql://root@/test?host=db1:port", "is not 'HOST' or 'HOST:PORT'"),
        ("postgresql://postgres@127.0.0.1/postgres?prepare_threshold=sometimes", "expected 'none'"),
    ],
)
def test_a_malformed_cluster_url_is_refused_with_what_to_write(url: str, message: str) -> None:
    with SQLSaver.from_conn_string(url) as saver, pytest.raises(ConfigurationError, match=message):
        saver.setup()


@pytest.mark.parametrize(("setting", "threshold"), [("none", None), ("0", 0), ("12", 12)])
def test_prepare_threshold_in_the_url_reaches_psycopg(setting: str, threshold: int | None) -> None:
    require("postgresql")
    url = make_url(SERVER_URLS["postgresql"]).update_query_dict({"prepare_threshold": setting})
    with SQLSaver.from_conn_string(url) as saver, saver.db.sync_engine.connect() as conn:
        assert conn.connection.dbapi_connection.prepare_threshold == threshold  # type: ignore[union-attr]
