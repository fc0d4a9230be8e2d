# SPDX-License-Identifier: MIT
"""PostgreSQL sources from Python, against the throwaway cluster that
tests/pg-cluster.sh starts around this file (EVFN_PG_CONNINFO): row
changes made with psql arrive with the documented mapping, the slot moves
past them, LISTEN/NOTIFY, the specific errors, and a runtime that closes
its open sources itself."""
import os
import subprocess
import threading

import pytest

import evfn
from helpers import wait_for

CONNINFO = os.environ.get("EVFN_PG_CONNINFO")

pytestmark = pytest.mark.skipif(
    CONNINFO is None or evfn.PgSource is None,
    reason="needs tests/pg-cluster.sh and evfn built with libpq")


def psql(script):
    """Runs a script with psql, each statement its own transaction."""
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                   input=script, text=True, check=True,
                   stdout=subprocess.DEVNULL)


def query(sql):
    out = subprocess.run(["psql", "-X", "-A", "-t", "-c", sql], text=True,
                         check=True, capture_output=True)
    return out.stdout.strip()


def collector(rt, name):
    got = []
    lock = threading.Lock()

    def handler(event):
        with lock:
            got.append(event)
    rt.register(name, handler, concurrency=1)
    return got


def table(name):
    psql(f"SET client_min_messages = warning;\n"
         f"DROP PUBLICATION IF EXISTS p_{name};\n"
         f"DROP TABLE IF EXISTS {name};\n"
         f"CREATE TABLE {name} (id int PRIMARY KEY, note text);\n"
         f"CREATE PUBLICATION p_{name} FOR TABLE {name};\n")


def drop_slot(slot):
    wait_for(lambda: query("SELECT count(*) FROM pg_replication_slots "
                           f"WHERE slot_name = '{slot}' AND active") == "0")
    query(f"SELECT pg_drop_replication_slot('{slot}')")


def test_pg_changes_arrive_with_the_mapping(rt):
    table("py_rows")
    got = collector(rt, "rows")
    src = rt.pg_changes("p_py_rows", "rows", conninfo=CONNINFO,
                        slot="py_rows", feedback=0.01, max_in_flight=1)
    assert src.kind == "changes" and src.name == "p_py_rows"
    wait_for(lambda: src.stats()["connects"] == 1 and src.status == 0)
    psql("INSERT INTO py_rows VALUES (1, 'tea');\n"
         "UPDATE py_rows SET note = 'green tea' WHERE id = 1;\n"
         "DELETE FROM py_rows WHERE id = 1;\n")
    wait_for(lambda: len(got) == 3)
    assert [e.type for e in got] == ["pg.public.py_rows.insert",
                                     "pg.public.py_rows.update",
                                     "pg.public.py_rows.delete"]
    assert [e.subject for e in got] == ["1", "1", "1"]
    assert got[0].json() == {"new": {"id": 1, "note": "tea"}}
    assert got[1].json() == {"new": {"id": 1, "note": "green tea"},
                             "old": {"id": 1}}
    assert got[2].json() == {"old": {"id": 1}}
    assert got[0].source == "evfn/pg/py_rows"
    assert got[0].extension("pglsn") and got[0].extension("pgxid")
    assert got[0].id.endswith(":0")
    end = query("SELECT pg_current_wal_lsn()")
    wait_for(lambda: query("SELECT confirmed_flush_lsn >= "
                           f"'{end}' FROM pg_replication_slots WHERE "
                           "slot_name = 'py_rows'") == "t")
    stats = src.stats()
    assert stats["submitted"] == 3 and stats["ended"] == 3
    src.close()
    assert src.closed
    src.close()
    with pytest.raises(evfn.InvalidArgument):
        src.stats()
    drop_slot("py_rows")


def test_pg_listen_delivers_notifications(rt):
    got = collector(rt, "jobs")
    src = rt.pg_listen("jobs", "jobs", conninfo=CONNINFO, type_prefix="db")
    assert src.kind == "listen"
    wait_for(lambda: src.stats()["connects"] == 1)
    psql("NOTIFY jobs, 'one';\nSELECT pg_notify('jobs', 'two');\n")
    wait_for(lambda: len(got) == 2)
    assert [(e.type, e.data) for e in got] == [("db.jobs", b"one"),
                                               ("db.jobs", b"two")]
    src.close()


def test_pg_errors_are_specific(rt):
    rt.register("rows", lambda event: None)
    with pytest.raises(evfn.InvalidArgument) as info:
        rt.pg_changes("p", "rows", conninfo="host='unterminated")
    assert info.value.code == evfn.ECONNINFO
    with pytest.raises(evfn.NoFunction):
        rt.pg_changes("p", "nosuch", conninfo=CONNINFO)
    with pytest.raises(evfn.InvalidArgument):
        rt.pg_changes("p", "rows", conninfo=CONNINFO, slot="Bad-Name")
    with pytest.raises(TypeError):
        rt.pg_changes("p", "rows", conninfo=CONNINFO, reconnect=(1,))
    with pytest.raises(evfn.InvalidArgument) as info:
        rt.pg_changes("p", "rows", conninfo=CONNINFO, reconnect=(2, 1))
    assert info.value.code == evfn.ERANGE
    src = rt.pg_changes("p_nosuch", "rows", conninfo=CONNINFO,
                        slot="py_nosuch")
    wait_for(lambda: src.status == evfn.ENOPUBLICATION)
    src.close()


def test_pg_runtime_closes_its_sources():
    table("py_close")
    rt = evfn.Runtime(workers=(1, 2))
    rt.register("rows", lambda event: None)
    rt.start()
    src = rt.pg_changes("p_py_close", "rows", conninfo=CONNINFO,
                        slot="py_close")
    wait_for(lambda: src.stats()["connects"] == 1)
    rt.close(grace=5.0)
    assert src.closed
    drop_slot("py_close")
