import re
import textwrap

import pytest
import yaml

from tilebatch import config
from tilebatch.config import ConfigError

from conftest import TOP, last_error, run_cli


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_the_shipped_config_loads_over_the_defaults():
    cfg = config.load(str(TOP / "config.yaml"), environ={})
    assert cfg["postgresql"]["dbnames"] == ["gis"]
    assert cfg["batch"]["queue-zoom"] == 7
    assert cfg["rawr"]["postgresql"]["host"] is None


@pytest.mark.parametrize("var", ["TILEQUEUE__store__date-prefix", "TILEQUEUE__STORE__DATE_PREFIX",
                                 "tilequeue__Store__Date-Prefix"])
def test_env_names_match_in_any_spelling(var):
    cfg = config.load(None, environ={var: "20180403"})
    assert cfg["store"]["date-prefix"] == "20180403"  # a number, meant as a string


def test_env_values_are_yaml():
    env = {"TILEQUEUE__postgresql__dbnames": "[gis, other]", "TILEQUEUE__postgresql__port": "5433",
           "TILEQUEUE__postgresql__host": "[db1, db2]"}
    cfg = config.load(None, environ=env)
    assert cfg["postgresql"]["dbnames"] == ["gis", "other"]
    assert cfg["postgresql"]["port"] == 5433
    assert cfg["postgresql"]["host"] == ["db1", "db2"]


def test_runbook_nested_variables():
    env = {"TILEQUEUE__rawr__postgresql__host": "replica", "TILEQUEUE__rawr__sink__bucket": "rawr-bucket",
           "TILEQUEUE__rawr__source__s3__prefix": "rawr", "TILEQUEUE__store__name": "tiles"}
    cfg = config.load(None, environ=env)
    assert cfg["rawr"]["postgresql"]["host"] == "replica"
    assert cfg["rawr"]["sink"]["bucket"] == "rawr-bucket"
    assert cfg["rawr"]["source"]["s3"]["prefix"] == "rawr"


def test_env_wins_over_file(tmp_path):
    path = write(tmp_path, "postgresql:\n  port: 6000\n")
    assert config.load(path, environ={})["postgresql"]["port"] == 6000
    assert config.load(path, environ={"TILEQUEUE__postgresql__port": "7000"})["postgresql"]["port"] == 7000


@pytest.mark.parametrize("env, message", [
    ({"TILEQUEUE__store__colour": "red"}, "TILEQUEUE__store__colour: unknown key 'store.colour'"),
    ({"TILEQUEUE__nope__x": "1"}, "TILEQUEUE__nope__x: unknown key 'nope'"),
    ({"TILEQUEUE__postgresql__port": "many"}, "TILEQUEUE__postgresql__port: postgresql.port must be int"),
    ({"TILEQUEUE__postgresql__dbnames": "[gis"}, "TILEQUEUE__postgresql__dbnames: not valid YAML at line 1, column 5"),
    ({"TILEQUEUE__postgresql__port__x": "1"}, "postgresql.port is a value, not a section"),
    ({"TILEQUEUE__postgresql": "1"}, "postgresql is a section, not a value"),
    ({"TILEQUEUE__batch__queue-zoom": "true"}, "batch.queue-zoom must be int, got bool"),
    # values that would hang a job or be ignored: refused, naming the key and its range
    ({"TILEQUEUE__metatile__max-zoom": "99"}, "metatile.max-zoom must be 3..16, got 99"),
    ({"TILEQUEUE__batch__queue-zoom": "25"}, "batch.queue-zoom must be 0..10, got 25"),
    ({"TILEQUEUE__batch__queue-zoom": "-1"}, "batch.queue-zoom must be 0..10, got -1"),
    ({"TILEQUEUE__postgresql__connect-timeout": "0"}, "postgresql.connect-timeout must be 1..300, got 0"),
    ({"TILEQUEUE__postgresql__port": "70000"}, "postgresql.port must be 1..65535, got 70000"),
    ({"TILEQUEUE__metatile__size": "16"}, "metatile.size must be 8, got 16"),
    ({"TILEQUEUE__rawr__group-zoom": "20"}, "rawr.group-zoom must be 8..12, got 20"),
    ({"TILEQUEUE__batch__queue-zoom": "9", "TILEQUEUE__rawr__group-zoom": "8"},
     "batch.queue-zoom 9 must be at most rawr.group-zoom 8"),
    ({"TILEQUEUE__aws__max-attempts": "0"}, "aws.max-attempts must be 1..20, got 0"),
    ({"TILEQUEUE__postgresql__dbnames": "[]"}, "postgresql.dbnames must not be an empty list"),
    ({"TILEQUEUE__postgresql__host": "[]"}, "postgresql.host must not be an empty list"),
    ({"TILEQUEUE__postgresql__host": "''"}, "every item of postgresql.host must be a non-empty str, got ''"),
    ({"TILEQUEUE__postgresql__dbnames": "[gis, 5]"}, "every item of postgresql.dbnames must be a non-empty str, got 5"),
    ({"TILEQUEUE__postgresql__host": "[db1, [db2]]"}, "every item of postgresql.host must be a non-empty str"),
    ({"TILEQUEUE__store__key-format-type": "flat"}, "store.key-format-type must be one of hash-prefix"),
])
def test_bad_env_names_the_variable(env, message):
    with pytest.raises(ConfigError) as e:
        config.load(None, environ=env)
    assert message in str(e.value)
    assert e.value.exit_code == 2


@pytest.mark.parametrize("text, message", [
    ("store:\n  colour: red\n", "key store.colour: unknown key 'store.colour'"),
    ("postgresql:\n  dbnames: gis\n", "postgresql.dbnames must be list, got str"),
    ("store: [\n", "not valid YAML at line 2, column 1"),
    ("- a\n- b\n", "expected a mapping of sections"),
])
def test_bad_file_names_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, text), environ={})
    assert message in str(e.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="config file /no/such.yaml: No such file"):
        config.load("/no/such.yaml", environ={})


def test_get_by_dotted_key_in_any_spelling():
    cfg = config.load(None, environ={})
    assert config.get(cfg, "batch.QUEUE_ZOOM") == 7
    with pytest.raises(ConfigError, match="unknown key 'batch.nope'"):
        config.get(cfg, "batch.nope")


def test_config_show_masks_secrets():
    proc = run_cli("--config", "config.yaml", "config", "show",
                   env={"TILEQUEUE__postgresql__password": "hunter2", "TILEQUEUE__rawr__postgresql__password": "x",
                        "TILEQUEUE__postgresql__dbnames": "[gis]"})  # make test sets its own database
    assert proc.returncode == 0, proc.stderr
    assert "hunter2" not in proc.stdout
    shown = yaml.safe_load(proc.stdout)
    assert shown["postgresql"]["password"] == "********"
    assert shown["rawr"]["postgresql"]["password"] == "********"
    assert shown["postgresql"]["dbnames"] == ["gis"]


def test_cli_bad_config_exits_2_with_one_line():
    proc = run_cli("config", "show", env={"TILEQUEUE__store__colour": "red"})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert "TILEQUEUE__store__colour" in last_error(proc)


def test_metatile_max_zoom_may_be_unset_or_in_range():
    assert config.load(None, environ={})["metatile"]["max-zoom"] is None
    assert config.load(None, environ={"TILEQUEUE__metatile__max-zoom": "14"})["metatile"]["max-zoom"] == 14


@pytest.mark.parametrize("data, message", [
    (b"postgresql:\n  port: 5432\n  port: 5433\n", "not valid YAML at line 3, column 3: duplicate key port"),
    (b"postgresql:\n  user: \xff\n", "not UTF-8 text (byte 20)"),
    (b"[" * 1000, "nested too deeply"),
])
def test_files_that_used_to_pass_or_crash_are_refused(tmp_path, data, message):
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load(str(path), environ={})
