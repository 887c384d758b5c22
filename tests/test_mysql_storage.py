"""What the MySQL/MariaDB storage needs beyond Optuna's defaults (tests/db_servers.py starts the servers).

Optuna keeps attribute values in TEXT columns: 64 KB on MySQL, unlimited on PostgreSQL and SQLite. An LLM
candidate's record (its prompt and up to four replies of 20,000 characters) can be longer, so flnas widens
those columns on MySQL; a database user who may not do that still gets a working study.
"""

from __future__ import annotations

import uuid

import pytest
from optuna.exceptions import StorageInternalError
from optuna.trial import TrialState

from flnas.study.storage import open_study


def test_a_long_non_ascii_record_is_stored_whole(study_url):
    study = open_study("long", study_url)
    trial = study.ask()
    record = {"prompt": "Entwurf für ein CNN — " * 4000, "raw": "x" * 90_000}  # ~180 KB as JSON
    trial.set_user_attr("record", record)
    again = open_study("long", study_url, create=False)  # a second open (the columns are widened already)
    assert again.get_trials(states=(TrialState.RUNNING,))[0].user_attrs["record"] == record


def test_a_mysql_user_who_may_not_alter_tables_still_opens_the_study(mariadb_server):
    import pymysql  # present: the fixture skips without it

    database, user = f"t_{uuid.uuid4().hex[:12]}", f"u_{uuid.uuid4().hex[:8]}"
    con = pymysql.connect(unix_socket=str(mariadb_server.folder / "mysql.sock"), user="root")
    try:
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE {database} CHARACTER SET utf8mb4")
            cur.execute(f"CREATE USER '{user}'@'localhost'")
            cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX, REFERENCES ON {database}.* "
                        f"TO '{user}'@'localhost'")
    finally:
        con.close()
    url = (f"mysql+pymysql://{user}@localhost/{database}?unix_socket={mariadb_server.folder / 'mysql.sock'}"
           "&charset=utf8mb4")
    study = open_study("narrow", url)
    study.ask().set_user_attr("record", {"raw": "x" * 1000})
    with pytest.raises(StorageInternalError):  # "Data too long": the 64 KB that widening avoids
        study.ask().set_user_attr("record", {"raw": "x" * 70_000})
