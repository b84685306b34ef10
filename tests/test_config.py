"""The configuration file: one schema, checked at the start of every command (issue 11, finding 7).

Every probe of the issue: a misspelled key in each table, a misspelled table, wrong types, a bare
number where a duration goes, secrets written into the file, ``--config`` and ``-v`` on every
command, and a stray ``./analyzer.toml`` that changed the defaults, named in the summary.
"""

from __future__ import annotations

import gzip
import string
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from analyzer.alerts import notify, shape
from analyzer.cli import app
from analyzer.cli.docs import commands
from analyzer.config import ConfigError, find_line, load, validate
from analyzer.jobs.nightly import NightlySettings
from analyzer.settings import SEVERITIES, Settings, Table, parse_size

from records import log_key, record, write_log

ACCT = "111122223333"
SLACK = "https://hooks.slack.com/services/T0000SECRET/B0000SECRET/XXXXXXXXXXXXSECRETTOKEN"
COMMANDS = [path.split(" ", 1)[1] for path, _, _ in commands() if path != "analyzer"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with no configuration anywhere: cwd, $HOME, $ANALYZER_CONFIG."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ANALYZER_CONFIG", raising=False)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def tables() -> list[tuple[tuple[str, ...], type[Table]]]:
    """Every table of the schema, with its path (``notify.webhook``...)."""
    out: list[tuple[tuple[str, ...], type[Table]]] = []

    def walk(cls: type[Table], path: tuple[str, ...]) -> None:
        for field in msgspec.structs.fields(cls):
            kind = field.type
            for member in getattr(kind, "__args__", (kind,)):
                if isinstance(member, type) and issubclass(member, Table):
                    out.append(((*path, field.encode_name), member))
                    walk(member, (*path, field.encode_name))

    walk(Settings, ())
    return out


def keys() -> list[tuple[str, str]]:
    return [(".".join(path), field.encode_name) for path, cls in tables() for field in msgspec.structs.fields(cls)
            if not any(isinstance(m, type) and issubclass(m, Table) for m in getattr(field.type, "__args__", ()))]


def args_for(command: str, tmp_path: Path) -> list[str]:
    """Arguments that get each command past its option parsing (and, with a good file, stop it cheaply)."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    data = ["--data", str(tmp_path / "no-dataset")]
    return {
        "ingest": [str(empty), "--data", str(tmp_path / "ingested")],
        "compact": data, "quarantine": data, "failures": data, "detect": data,
        "sql": [*data, "select 1"],
        "pull": ["s3://bucket", "--since", "last tuesday"],  # a usage error after the config: no S3 call
        "nightly": ["--source", str(tmp_path / "no-such-source"), *data],
        "detections show": ["mfa-failure"],
        "detections test": [str(tmp_path / "no-detections")],
        "detections new": ["my-detection", "--dir", str(tmp_path / "mine")],
        "athena ddl": ["--location", "s3://bucket/prefix"],
        "watch": ["--queue-url", "not-a-queue-url", *data],  # a usage error after the config: no SQS call
    }.get(command, [])


def run(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, list(args))


# -- unknown tables and keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("table, name", keys())
def test_a_misspelled_key_in_every_table_names_the_nearest(runner: CliRunner, home: Path, table: str,
                                                           name: str) -> None:
    config = write(home / "a.toml", f"# the file\n[{table}]\n{name}{name[-1]} = 1\n")
    result = run(runner, "detect", "--data", str(home / "none"), "--config", str(config))
    assert result.exit_code == 1
    assert result.output == (f"error: unknown key {table}.{name}{name[-1]} in {config} line 3; did you mean "
                             f"{name}?\n")


@pytest.mark.parametrize("text, table, meant", [
    ('[detekt]\nfail_on = "high"\n', "detekt", "detect"),
    ("[nightlyy]\nretention = \"90d\"\n", "nightlyy", "nightly"),
    ('[allowlists]\nips = ["198.51.100.1"]\n', "allowlists", "allowlist"),
    ('[notify.webhok]\nurl_env = "HOOK"\n', "notify.webhok", "notify.webhook"),
    ('[detekt.params."console-brute-force"]\nip_threshold = 20\n', "detekt", "detect"),
])
def test_a_misspelled_table_names_the_nearest(runner: CliRunner, home: Path, text: str, table: str,
                                              meant: str) -> None:
    config = write(home / "a.toml", text)
    result = run(runner, "detect", "--data", str(home / "none"), "--config", str(config))
    assert result.exit_code == 1
    assert f"error: unknown table [{table}] in {config} line 1; did you mean [{meant}]?" in result.output


def test_the_issue_probes_nightly_max_lookbak(runner: CliRunner, home: Path) -> None:
    config = write(home / "a.toml", '[nightly]\nlate_margin = "2h"\nmax_lookbak = "7d"\n')
    (home / "logs").mkdir()
    result = run(runner, "nightly", "--source", str(home / "logs"), "--data", str(home / "data"), "--config",
                 str(config), "--quiet")
    assert result.exit_code == 1, result.output
    assert f"unknown key nightly.max_lookbak in {config} line 3; did you mean max_lookback?" in result.output
    assert not (home / "data").exists()  # stopped before doing anything


def test_a_mapping_from_python_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"unknown key nightly\.max_lookbak in config; did you mean max_lookback\?"):
        NightlySettings.from_config({"nightly": {"max_lookbak": "7d"}})


def test_unknown_detection_and_parameter_name_the_nearest(runner: CliRunner, home: Path) -> None:
    config = write(home / "a.toml", '[detect.params."console-brute-forse"]\nip_threshold = 20\n')
    result = run(runner, "detect", "--data", str(home / "none"), "--config", str(config))
    assert result.exit_code == 1
    assert (f"unknown detection [detect.params.console-brute-forse] in {config} line 1; did you mean "
            "[detect.params.console-brute-force]?") in result.output
    write(config, '[detect.params."console-brute-force"]\n\nip_threshhold = 20\n')
    result = run(runner, "detect", "--data", str(home / "none"), "--config", str(config))
    assert (f"unknown parameter detect.params.console-brute-force.ip_threshhold in {config} line 3; "
            "did you mean ip_threshold?") in result.output


# -- wrong types and units ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, where, message", [
    ('detect = "high"\n', "detect in {} line 1", "expected a table, got a string"),
    ('[pull]\nbucket = "trail"\nworkers = "many"\n', "pull.workers in {} line 3", "expected an integer, got a string"),
    ("[pull]\nworkers = 0\n", "pull.workers in {} line 2", "expected an integer >= 1"),
    ("[nightly]\nretention = 90\n", "nightly.retention in {} line 2", "a bare number has no unit"),
    ('[nightly]\nlate_margin = "2 hours"\n', "nightly.late_margin in {} line 2", "not a duration"),
    ("[ingest]\nmax_object_size = 512\n", "ingest.max_object_size in {} line 2", "a size needs a unit"),
    ('[detect]\nfail_on = "severe"\n', "detect.fail_on in {} line 2", "expected one of info, low, medium"),
    ('[allowlist]\nips = "198.51.100.1"\n', "allowlist.ips in {} line 2", "expected a list, got a string"),
    ('[pull]\naccounts = [111122223333]\n', "pull.accounts in {} line 2", "expected a string, got an integer"),
    ("[nightly]\nrenotify_growth = 1\n", "nightly.renotify_growth in {} line 2", "0 (never) or a factor above 1"),
    ('[notify]\nwebhook = { url_env = "HOOK", retries = -1 }\n', "notify.webhook.retries in {} line 2",
     "expected an integer >= 0"),
    ('[detect.params."console-brute-force"]\nip_threshold = "many"\n',
     "detect.params.console-brute-force.ip_threshold in {} line 2", "is not a valid int"),
])
def test_a_wrong_type_is_one_line_with_file_line_and_key(runner: CliRunner, home: Path, text: str, where: str,
                                                         message: str) -> None:
    config = write(home / "a.toml", text)
    result = run(runner, "detect", "--data", str(home / "none"), "--config", str(config))
    assert result.exit_code == 1
    assert result.output.startswith(f"error: bad value for {where.format(config)}: ")
    assert message in result.output and len(result.output.splitlines()) == 1, result.output


def test_a_bad_allowlist_network_names_its_line(runner: CliRunner, home: Path) -> None:
    config = write(home / "a.toml", '[allowlist]\nprincipals = ["ci"]\nips = ["10.0.0.0/33"]\n')
    result = run(runner, "detect", "--data", str(home / "none"), "--config", str(config))
    assert result.exit_code == 1
    assert result.output == f"error: {config} line 3: [allowlist] ips: '10.0.0.0/33' is not an address or CIDR " \
        "network\n"


def test_units_are_read_as_written(home: Path) -> None:
    config = write(home / "a.toml", '[nightly]\nretention = "90d"\nlate_margin = "30m"\n[detect]\ntimeout = "10m"\n'
                                    '[ingest]\nmax_object_size = "1GiB"\nworkers = 3\n[pull]\nworkers = 8\n')
    settings = NightlySettings.from_settings(load(config).settings)
    assert (settings.retention, settings.late_margin) == (timedelta(days=90), timedelta(minutes=30))
    assert (settings.timeout, settings.max_object_bytes, settings.workers, settings.fetch_threads) == (
        600.0, 2**30, 3, 8)
    assert parse_size("512MiB") == 512 * 2**20 and parse_size("2G") == 2 * 2**30


def test_nightly_keys_win_over_the_tables_they_fall_back_on(home: Path) -> None:
    config = write(home / "a.toml", '[detect]\ntimeout = "10m"\nfail_on = "low"\n'
                                    '[nightly]\ntimeout = "1m"\nfail_on = "critical"\n')
    settings = NightlySettings.from_settings(load(config).settings)
    assert (settings.timeout, settings.fail_on) == (60.0, "critical")


def test_an_invalid_toml_file_is_one_line(runner: CliRunner, home: Path) -> None:
    config = write(home / "a.toml", "[detect\n")
    result = run(runner, "schema", "--config", str(config))
    assert result.exit_code == 1 and result.output.startswith(f"error: {config}: invalid TOML: ")


# -- secrets --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, secret, says", [
    (f'[notify.webhook]\nurl = "{SLACK}"\n', "SECRET", 'url_env = "ANALYZER_WEBHOOK_URL"'),
    ('[notify.webhook]\nurl = "https://example.com/incoming/abc123"\n', "abc123", "url_env"),
    (f'[notify.webhook]\nurl_env = "{SLACK}"\n', "SECRET", "url_env"),
    ('[notify.webhook]\nurl_env = "HOOK"\ntoken = "s3cr3t-t0ken"\n', "s3cr3t", "environment variable"),
    ('[pull]\nendpoint_url = "https://minio:hunter2@minio.example.com"\n', "hunter2", "user:password@"),
    ('[pull]\nprofile = "AKIAIOSFODNN7EXAMPLE"\n', "IOSFODNN7", 'profile = "NAME"'),
    ('[pull]\naws_secret_access_key = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"\n', "wJalrX", "environment"),
    ('[nightly]\nsource = "https://example.com/hook?token=abcdef"\n', "abcdef", "environment variable"),
])
def test_a_secret_in_the_file_is_refused_without_showing_it(runner: CliRunner, home: Path, text: str, secret: str,
                                                            says: str) -> None:
    config = write(home / "a.toml", text)
    (home / "logs").mkdir()
    result = run(runner, "nightly", "--source", str(home / "logs"), "--data", str(home / "data"), "--config",
                 str(config), "--quiet")
    assert result.exit_code == 1
    assert result.output.startswith(f"error: secret in {config} line "), result.output
    assert says in result.output and secret not in result.output


def test_the_environment_variable_form_still_works(home: Path) -> None:
    config = load(write(home / "a.toml", '[notify.webhook]\nurl_env = "SLACK_WEBHOOK"\ntimeout = 10\nbackoff = "2s"\n'))
    [hook] = notify.notifiers_from_config({"notify": config.table("notify")},
                                          environ={"SLACK_WEBHOOK": "https://hooks.example.com/x"})
    assert (hook.name, hook.timeout, hook.backoff) == ("webhook:SLACK_WEBHOOK", 10.0, 2.0)


# -- --config and -v on every command -------------------------------------------------------------------------------


def test_every_command_takes_config_and_verbose() -> None:
    options = {path: {o for p in command.params for o in p.opts} for path, command, _ in commands()}
    missing = [f"{path} {option}" for path, opts in options.items() if path != "analyzer"
               for option in ("--config", "-v") if option not in opts]
    assert not missing, missing


@pytest.mark.parametrize("command", COMMANDS)
def test_config_is_checked_at_the_start_of_every_command(runner: CliRunner, home: Path, command: str) -> None:
    config = write(home / "a.toml", '[detect]\nfail_onn = "high"\n')
    result = run(runner, *command.split(), "--config", str(config), *args_for(command, home))
    assert result.exit_code == 1, result.output
    assert f"error: unknown key detect.fail_onn in {config} line 2; did you mean fail_on?" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_verbose_names_the_file_loaded(runner: CliRunner, home: Path, command: str) -> None:
    config = write(home / "a.toml", '[detect]\nfail_on = "critical"\n')
    result = run(runner, *command.split(), "-v", "--config", str(config), *args_for(command, home))
    assert f"config: {config} (--config): sets detect.fail_on\n" in result.stderr, result.output


def test_verbose_says_when_no_file_was_loaded(runner: CliRunner, home: Path) -> None:
    result = run(runner, "schema", "-v")
    assert result.exit_code == 0
    assert result.stderr.startswith("config: none (looked for $ANALYZER_CONFIG, ./analyzer.toml, "
                                    "~/.config/analyzer/config.toml): built-in defaults")


def test_verbose_names_a_file_found_by_the_environment(runner: CliRunner, home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(home / "env.toml", "[sql]\ntimeout = \"1m\"\n")
    monkeypatch.setenv("ANALYZER_CONFIG", str(config))
    assert f"config: {config} ($ANALYZER_CONFIG): sets sql.timeout" in run(runner, "schema", "-v").stderr


# -- what a file changed, in the summary ----------------------------------------------------------------------------


def login(event_id: str, time: str, name: str, mfa: str) -> dict[str, Any]:
    return record(0, time=time, eventSource="signin.amazonaws.com", eventName="ConsoleLogin",
                  eventType="AwsConsoleSignIn", sourceIPAddress="203.0.113.66", requestParameters=None,
                  readOnly=False, responseElements={"ConsoleLogin": "Success"},
                  userIdentity={"type": "IAMUser", "principalId": "AIDAMALLORY", "accountId": ACCT,
                                "arn": f"arn:aws:iam::{ACCT}:user/{name}", "userName": name},
                  additionalEventData={"LoginTo": "https://console.aws.amazon.com/", "MobileVersion": "No",
                                       "MFAUsed": mfa}) | {"eventID": event_id}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sign-in without MFA (an alert), beside one with MFA."""
    root = tmp_path_factory.mktemp("logs")
    write_log(root, log_key(0), [login("0badc0de-0000-4000-8000-000000000001", "2026-11-20T10:00:00Z", "mallory", "No"),
                                 login("0badc0de-0000-4000-8000-000000000002", "2026-11-20T11:00:00Z", "alice", "Yes")])
    return root


@pytest.fixture(scope="module")
def alert_data(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("data")
    assert CliRunner().invoke(app, ["ingest", str(logs), "--data", str(data), "--quiet"]).exit_code == 0
    return data


def test_a_stray_analyzer_toml_is_named_in_the_summary(runner: CliRunner, home: Path, alert_data: Path) -> None:
    without = run(runner, "detect", "--data", str(alert_data))
    assert without.exit_code == 3 and "config" not in without.stdout  # no file, no line
    write(home / "analyzer.toml", '[allowlist]\nprincipals = ["mallory"]\n')
    result = run(runner, "detect", "--data", str(alert_data))
    assert result.exit_code == 0, result.output
    assert "config ./analyzer.toml: 1 allowlist entry suppressed 1 alert\n" in result.stdout
    as_jsonl = run(runner, "detect", "--data", str(alert_data), "--format", "jsonl")
    assert as_jsonl.stdout == "" and "config ./analyzer.toml: 1 allowlist entry suppressed 1 alert" in as_jsonl.stderr
    verbose = run(runner, "detect", "--data", str(alert_data), "-v", "--quiet")
    assert "config: ./analyzer.toml (found in the current directory): sets allowlist.principals" in verbose.stderr


def test_the_summary_lists_parameters_and_settings_the_file_changed(runner: CliRunner, home: Path,
                                                                    alert_data: Path) -> None:
    write(home / "analyzer.toml", '[detect]\nfail_on = "critical"\n[detect.params."console-brute-force"]\n'
                                  "ip_threshold = 20\n")
    result = run(runner, "detect", "--data", str(alert_data))
    assert result.exit_code == 0, result.output  # the high alert is below the file's fail_on
    assert ('config ./analyzer.toml: console-brute-force.ip_threshold = 20; detect.fail_on = "critical"\n'
            in result.stdout)
    flagged = run(runner, "detect", "--data", str(alert_data), "--fail-on", "high")
    assert flagged.exit_code == 3  # the flag wins, and the summary no longer credits the file with it
    assert "config ./analyzer.toml: console-brute-force.ip_threshold = 20\n" in flagged.stdout


def test_nightly_summary_names_the_file(runner: CliRunner, home: Path, logs: Path) -> None:
    config = write(home / "n.toml", '[allowlist]\nprincipals = ["mallory"]\n[nightly]\nworkers = 1\n')
    result = run(runner, "nightly", "--source", str(logs), "--data", str(home / "data"), "--report-dir",
                 str(home / "reports"), "--since", "2026-11-19", "--until", "2026-11-21", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert f"config {config}: 1 allowlist entry suppressed 1 alert\n" in result.stdout


# -- the newer settings, and flags winning --------------------------------------------------------------------------


def test_ingest_max_object_size_from_the_file_and_the_flag_wins(runner: CliRunner, home: Path, logs: Path) -> None:
    config = write(home / "a.toml", '[ingest]\nmax_object_size = "1KiB"\n')
    capped = run(runner, "ingest", str(logs), "--data", str(home / "one"), "--config", str(config))
    assert capped.exit_code == 4, capped.output
    assert "files: 0 ingested" in capped.stdout and "failed: " in capped.stdout
    assert f'config {config}: ingest.max_object_size = "1KiB"' in capped.stdout
    flag = run(runner, "ingest", str(logs), "--data", str(home / "two"), "--config", str(config),
               "--max-object-size", "512MiB")
    assert flag.exit_code == 0 and "files: 1 ingested" in flag.stdout and "config " not in flag.stdout


def test_sql_timeout_from_the_file(runner: CliRunner, home: Path, alert_data: Path) -> None:
    config = write(home / "a.toml", '[sql]\ntimeout = "1s"\n')
    result = run(runner, "sql", "--data", str(alert_data), "--config", str(config),
                 "select count(*) from range(100000000000) a")
    assert result.exit_code == 1 and "time limit" in result.output, result.output


def test_failures_give_up_after_from_the_file(runner: CliRunner, home: Path) -> None:
    path = home / "in" / log_key(0)
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(b'{"Records": [{"eventID": '))  # a cut-off log: fails, retried by every run
    assert run(runner, "ingest", str(home / "in"), "--data", str(home / "data"), "--quiet").exit_code == 4
    default = run(runner, "failures", "--data", str(home / "data"), "--give-up")
    assert "gave up on 0 failure(s)" in default.output, default.output  # 7d by default: too recent
    config = write(home / "a.toml", '[failures]\ngive_up_after = "0s"\n')
    result = run(runner, "failures", "--data", str(home / "data"), "--give-up", "--config", str(config))
    assert result.exit_code == 0 and "gave up on 1 failure(s)" in result.output, result.output


def test_nightly_has_a_timeout_flag(runner: CliRunner) -> None:
    assert "--timeout" in run(runner, "nightly", "--help").output


# -- the schema's copies agree with the library ---------------------------------------------------------------------


def test_the_schema_agrees_with_the_library() -> None:
    assert tuple(shape.SEVERITIES) == SEVERITIES
    assert notify.DEFAULT_WEBHOOK_ENV == "ANALYZER_WEBHOOK_URL"
    defaults = NightlySettings()
    assert NightlySettings.from_settings(Settings()) == defaults
    assert NightlySettings.from_config({}) == defaults


# -- finding the line -----------------------------------------------------------------------------------------------


def test_find_line_reads_toml_spellings() -> None:
    text = ('top = 1\n[detect . params."console-brute-force"]\nip_threshold = 20\n'
            '[detect]\nnote = """\nfail_on = "not a key"\n"""\n  fail_on = "high"\n'
            "[notify]\nwebhook = { url_env = \"X\" }\n'quoted key' = 2\n")
    assert find_line(text, ("top",)) == 1
    assert find_line(text, ("detect", "params", "console-brute-force", "ip_threshold")) == 3
    assert find_line(text, ("detect", "fail_on")) == 8  # not line 6, inside the multi-line string
    assert find_line(text, ("detect", "params")) == 2  # the first table under it
    assert find_line(text, ("notify", "webhook", "url_env")) == 10  # inside an inline table
    assert find_line(text, ("notify", "quoted key")) == 11


NAMES = st.text(string.ascii_lowercase + "_-", min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(NAMES, st.dictionaries(NAMES, st.integers(0, 9), min_size=1, max_size=4), min_size=1,
                       max_size=4), st.lists(st.sampled_from(["", "# note", "   "]), max_size=3))
def test_find_line_finds_every_key_where_it_was_written(doc: dict[str, dict[str, int]], filler: list[str]) -> None:
    lines, where = [], {}
    for table, items in doc.items():
        lines += [*filler, f'["{table}"]']
        for name, value in items.items():
            lines += [f"{name} = {value}", *filler]
            where[(table, name)] = len(lines) - len(filler)
    text = "\n".join(lines) + "\n"
    for path, line in where.items():
        assert find_line(text, path) == line


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(tables()), NAMES)
def test_no_unknown_key_is_ever_accepted(table: tuple[tuple[str, ...], type[Table]], name: str) -> None:
    path, cls = table
    known = {f.encode_name for f in msgspec.structs.fields(cls)}
    if name in known:
        return
    document: dict[str, Any] = {name: 1}
    for part in reversed(path):
        document = {part: document}
    with pytest.raises(ConfigError, match=r"^(unknown key|secret in) "):
        validate(document)
