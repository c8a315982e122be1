"""A public sample schema's shape (tests/fixtures/pagila_like.sql: partitioned payment with foreign
keys declared on the partitions, SETOF customer functions, the group_concat aggregate and views over
it, a tsvector trigger, domains, an enum, a materialized view) through analyze + migrate, into an
empty database and into an older drifted copy of it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from replicator.cli import main

from test_roundtrip import fingerprints

FIXTURES = Path(__file__).parent / "fixtures"


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


def _round_trip(master_url: str, replica_url: str, out: Path, *flags: str) -> str:
    common = ["--master", master_url, "--replica", replica_url, "--out-dir", str(out)]
    res = _cli("migrate", *common, *flags)
    assert res.exit_code == 0, res.output
    again = _cli("analyze", *common, "--exit-code")
    assert again.exit_code == 0, again.output
    assert "(refused: 0)" in again.output  # only reads reached the master
    return res.output


def test_into_an_empty_database(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, (FIXTURES / "pagila_like.sql").read_text())
    _round_trip(master_url, replica_url, tmp_path)
    m, r = fingerprints(sql_on, master_url, replica_url)
    assert sorted(m - r) == [] and sorted(r - m) == []
    # the replica works like the master: the trigger fills the tsvector, the aggregate aggregates
    sql_on(replica_url, """
        INSERT INTO language (name) VALUES ('English');
        INSERT INTO film (title, description, language_id, rating, fulltext) VALUES
            ('Academy Dinosaur', 'An epic drama', 1, 'PG', ''), ('Ace Goldfinger', 'A thrilling story', 1, 'G', '');
    """)
    assert sql_on(replica_url, "SELECT group_concat(title ORDER BY title), bool_and(fulltext @@ 'epic | thrill'::tsquery) "
                               "FROM film") == [("Academy Dinosaur, Ace Goldfinger", True)]


def test_into_an_older_copy(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, (FIXTURES / "pagila_like.sql").read_text())
    sql_on(replica_url, (FIXTURES / "pagila_like_old.sql").read_text())
    common = ["--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path)]

    # without --allow-destructive: the payment table cannot become partitioned (that drops it), so
    # what needs it waits; everything else is applied
    res = _cli("migrate", *common)
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "needs skipped destructive step" in res.output
    assert sql_on(replica_url, "SELECT relkind FROM pg_class WHERE relname = 'payment'") == [("r",)]
    assert sql_on(replica_url, "SELECT count(*) FROM payment") == [(1,)]
    rollback = next((tmp_path / "reports" / "backups").iterdir()) / "rollback.sql"
    assert "DROP TABLE public.payment" not in rollback.read_text()  # skipped steps are not undone

    out = _round_trip(master_url, replica_url, tmp_path, "--allow-destructive")
    assert "applied" in out
    # rows that fit survived the type changes (rating text -> enum, release_year integer -> domain)
    assert sql_on(replica_url, "SELECT title, rating::text, release_year FROM film ORDER BY film_id") == [
        ("Alpha", "PG", 2001), ("Beta", "R", 2005)]
    # the recreated payment's old rows were backed up before it was dropped
    backups = sorted((tmp_path / "reports" / "backups").iterdir())
    assert "2.99" in (backups[-1] / "data" / "public.payment.copy").read_text()
    m, r = fingerprints(sql_on, master_url, replica_url)
    assert sorted(m - r) == [] and sorted(r - m) == []


def test_bad_enum_value_stops_before_anything_changes(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, (FIXTURES / "pagila_like.sql").read_text())
    sql_on(replica_url, (FIXTURES / "pagila_like_old.sql").read_text())
    sql_on(replica_url, "INSERT INTO film (title, language_id, rating) VALUES ('Gamma', 1, 'XXX')")
    res = _cli("migrate", "--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path), "--allow-destructive")
    assert res.exit_code == 2
    out = res.output.strip()
    assert out.startswith("error: pre-check failed") and "public.film.rating" in out and "1 rows" in out
    assert "not labels of public.mpaa_rating" in out and "\n" not in out
    assert sql_on(replica_url, "SELECT data_type FROM information_schema.columns "
                               "WHERE table_name = 'film' AND column_name = 'rating'") == [("text",)]
