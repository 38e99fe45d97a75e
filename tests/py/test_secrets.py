"""A password never shows: not in `config show`, not in a config error, not in any line a failing
job prints, not in a record. On Batch it arrives in TILEQUEUE__postgresql__password, as it is."""

import os
import signal
import subprocess

import pytest

from tilebatch import cli, config, load, log

from conftest import TOP, build_env, run_cli
from motoserver import free_port

SECRET = "S3cretXYZ"
# Values that YAML would choke on or rewrite: each once made a parse error echo the password.
AWKWARD = [f"@{SECRET}", f"`{SECRET}", f"%{SECRET}", f"*{SECRET}", f"[{SECRET}", f"{{{SECRET}",
           f'a": "{SECRET}', f"{SECRET}: x", f"- {SECRET}", f"!{SECRET}", f"'{SECRET}"]


@pytest.fixture(autouse=True)
def own_secrets(monkeypatch):
    """What a test's config loads hide stays hidden in that test only: a later test's lines are its own."""
    monkeypatch.setattr(log, "_secrets", set())


def shown(proc) -> str:
    return proc.stdout + proc.stderr


@pytest.fixture
def tilebatch(monkeypatch, capsys):
    """`tilebatch ARGS` run in this process (quicker than a new one for each of many values): what it printed."""
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # main's SIGTERM handler stays out of pytest

    def run(*argv, env=None):
        with monkeypatch.context() as m:
            m.setattr(log, "_secrets", set())  # nothing masked that this run did not see itself
            for name, value in (env or {}).items():
                m.setenv(name, value)
            code = cli.main([str(a) for a in argv])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out.out, out.err)

    return run


def assert_hidden(*procs) -> None:
    for proc in procs:
        for line in shown(proc).splitlines():
            assert SECRET not in line, line


@pytest.mark.parametrize("value", AWKWARD)
def test_config_show_never_prints_a_password_however_it_is_written(value, tilebatch):
    env = {"TILEQUEUE__postgresql__password": value}
    proc = tilebatch("--config", TOP / "config.yaml", "config", "show", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "password: '********'" in proc.stdout
    assert_hidden(proc)
    got = tilebatch("config", "get", "postgresql", env=env)
    assert got.returncode == 0 and "password: '********'" in got.stdout
    assert_hidden(got)
    # Asked for by name, the one value is printed: as it was given, verbatim.
    assert tilebatch("config", "get", "postgresql.password", env=env).stdout == value + "\n"


def test_config_show_in_a_process_of_its_own_too():
    proc = run_cli("--config", "config.yaml", "config", "show", env={"TILEQUEUE__postgresql__password": AWKWARD[0]})
    assert proc.returncode == 0 and "password: '********'" in proc.stdout
    assert_hidden(proc)


@pytest.mark.parametrize("value", ["0123", "0x1F", "12:30", "yes", "1e3", "null", "~", f"@{SECRET}", " x "])
def test_a_password_is_read_verbatim_never_as_yaml(value, tmp_path):
    assert config.load(None, environ={"TILEQUEUE__postgresql__password": value})["postgresql"]["password"] == value
    assert config.load(None, environ={"TILEQUEUE__rawr__postgresql__password": value})["rawr"]["postgresql"][
        "password"] == value
    path = tmp_path / "config.yaml"
    path.write_text(f"postgresql:\n  password: '{value}'\n")
    assert config.load(str(path), environ={})["postgresql"]["password"] == value


@pytest.mark.parametrize("written, value", [("0123", "0123"), ("0x1F", "0x1F"), ("12:30", "12:30"), ("yes", "yes"),
                                            ("1e3", "1e3"), ("null", None), ("~", None), ("", None)])
def test_an_unquoted_password_in_a_file_is_the_text_written(written, value, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"rawr:\n  postgresql:\n    password: {written}\n")
    assert config.load(str(path), environ={})["rawr"]["postgresql"]["password"] == value


@pytest.mark.parametrize("text", [
    f"postgresql:\n  password: *{SECRET}\n",                 # an alias that is not there
    f"postgresql:\n  password: @{SECRET}\n",                 # a character that starts no token
    f"postgresql:\n  password: [{SECRET}\n",                 # a flow never closed
    f"postgresql:\n  password: {SECRET}: x\n",               # a mapping where none may start
    f"postgresql:\n  password: \"{SECRET}\\q\"\n",           # an unknown escape
    f"postgresql:\n  password: {SECRET}\n  port: many\n",    # the error is elsewhere in the file
    f"postgresql:\n  password: {SECRET}\n  password: {SECRET}\n",  # twice
    f"postgresql:\n  password: [{SECRET}]\n",                # not a string
    f"store:\n  url: file://x\nrawr:\n  postgresql:\n    password: {SECRET}\n  nope: 1\n",
])
def test_a_config_error_never_prints_a_password(text, tmp_path, tilebatch):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    proc = tilebatch("--config", path, "config", "show")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert_hidden(proc)


@pytest.mark.parametrize("env", [
    {"TILEQUEUE__postgresql": f"{{password: {SECRET}, port: [}}"},
    {"TILEQUEUE__postgresql": f"{{password: [{SECRET}]}}"},
    {"TILEQUEUE__rawr__postgresql": f"password: {SECRET}\nport: x"},
    {"TILEQUEUE__postgresql__password": SECRET, "TILEQUEUE__postgresql__port": f"{SECRET}"},
])
def test_a_section_given_whole_in_the_environment_never_prints_its_password(env, tilebatch):
    proc = tilebatch("config", "show", env=env)
    assert proc.returncode == 2
    assert_hidden(proc)


def test_failing_jobs_and_their_records_never_print_a_password(tmp_path, db_url):
    env = {**build_env(tmp_path), "TILEQUEUE__postgresql__password": f"@{SECRET}",
           "TILEQUEUE__rawr__postgresql__password": f"%{SECRET}"}
    closed = {**env, "TILEQUEUE__postgresql__port": str(free_port())}
    procs = [
        run_cli("meta-tile-low-zoom", "--config", "config.yaml", "--tile", "7/72/37", "--run-id", "s", env=closed),
        run_cli("rawr-tile", "--config", "config.yaml", "--tile", "7/72/37", "--run-id", "s", env=closed),
        run_cli("build", "--config", "config.yaml", "--run-id", "s", "--bbox", "24.94,60.16,24.95,60.17", env=closed),
        run_cli("rawr-tile", "--config", "config.yaml", "--tile", "7/999/0", "--run-id", "s", env=env),
        # A message that would carry it (a database named like the password) has it masked.
        run_cli("meta-tile-low-zoom", "--config", "config.yaml", "--tile", "7/72/37", "--run-id", "s",
                env={**env, "TILEQUEUE__postgresql__dbnames": f"['@{SECRET}']"}),
    ]
    assert [p.returncode for p in procs] == [1, 1, 1, 2, 2]
    assert "********" in procs[-1].stderr
    # A job that works (the local cluster trusts any password) writes records without it.
    ok = run_cli("meta-tile-low-zoom", "--config", "config.yaml", "--tile", "7/72/37", "--run-id", "s", env=env)
    assert ok.returncode == 0, ok.stderr
    assert_hidden(*procs, ok)
    for folder, _, files in os.walk(tmp_path):
        for name in files:
            assert SECRET.encode() not in open(os.path.join(folder, name), "rb").read(), name
    assert not any(SECRET in line for line in open(TOP / "config.yaml"))


# How a password in --database-url can be mistyped: each once had libpq's message, or the name shown, quote it.
MISTYPED_URLS = [f"postgresql://tiles:{SECRET}%zz@db/gis", f"password={SECRET} 2 host=db",
                 f"postgresql://tiles:{SECRET}@x@127.0.0.1/gis", f"postgresql://tiles:{SECRET}/x@127.0.0.1/gis",
                 "postgresql://tiles:4821/S3cretXYZ@127.0.0.1:5432/gis"]


@pytest.mark.parametrize("url", MISTYPED_URLS)
def test_a_mistyped_database_url_is_refused_without_its_password(url, tilebatch):
    proc = tilebatch("loaded", "--database-url", url)
    assert proc.returncode == 2, proc.stderr
    assert "--database-url" in proc.stderr
    assert_hidden(proc)


def test_a_database_url_password_is_never_shown_nor_on_osm2pgsqls_command_line(tilebatch):
    url = f"postgresql://tiles:{SECRET}@127.0.0.1:{free_port()}/gis"
    proc = tilebatch("loaded", "--database-url", url)
    assert proc.returncode == 1, proc.stderr  # nothing listens there: a retry may find it up
    assert "cannot connect to the database 127.0.0.1:" in proc.stderr
    assert_hidden(proc)
    t = load.target(config.load(None), url)
    assert SECRET not in " ".join(load.osm2pgsql_command(t, "x.osm.pbf", 10, None))
    assert t.env == {"PGPASSWORD": SECRET}  # osm2pgsql reads it from its environment, which ps does not show
