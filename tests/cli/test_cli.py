"""The command line against the sandbox: tables, --json for scripts, one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from formosms.cli import app
from tests.e2e.conftest import Running

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_send_status_balance_with_json(box: Running) -> None:
    dsn = box.dsn("every8d")
    code, out, _ = run("send", "0912-345-678", "--text", "CLI 測試", "--provider", dsn, "--json")
    assert code == 0
    sent = json.loads(out)
    assert sent["provider"] == "every8d" and sent["messages"][0]["recipient"] == "+886912345678"
    code, out, _ = run("status", sent["batch_id"], "--json", env={"FORMOSMS_PROVIDER": dsn})
    assert code == 0 and json.loads(out)[0]["recipient"] == "+886912345678"
    code, out, _ = run("balance", "--provider", dsn, "--json")
    assert code == 0 and float(json.loads(out)["balance"]) > 0
    assert box.messages("every8d")[0]["text"] == "CLI 測試"


def test_estimate_table(box: Running) -> None:
    code, out, _ = run(
        "estimate", "0912345678", "+8613681912700", "--text", "中" * 71, "--provider", box.dsn("every8d")
    )
    # EVERY8D §1.1: 71–134 字 = 2 points; "國際簡訊(非+886 開頭)則需以三倍點數計價之": 2 + 6
    assert code == 0 and "every8d estimate" in out and "│ 8 " in out


def test_errors_are_one_line_and_non_zero(box: Running) -> None:
    code, _, err = run("send", "0912-ABC", "--text", "x", "--provider", box.dsn("twsms"))
    assert code == 1 and err.count("\n") == 1 and "InvalidRecipient" in err
    code, _, err = run("balance", "--provider", box.dsn("twsms", password="wrong-password"))
    assert code == 1 and "AuthenticationError" in err and "wrong-password" not in err
    code, _, err = run("balance", env={"FORMOSMS_PROVIDER": ""})
    assert code == 1 and "no provider" in err
    assert box.messages("twsms") == []


def test_replies_and_cancel(box: Running) -> None:
    dsn = box.dsn("twsms") + "&two_way_code=12345"
    code, out, _ = run(
        "send", "0912345678", "--text", "預約", "--schedule", "2099-01-01T09:00", "--provider", dsn, "--json"
    )
    assert code == 0
    message_id = json.loads(out)["messages"][0]["message_id"]
    code, out, _ = run("cancel", f"{message_id}@0912345678", "--provider", dsn, "--json")
    assert code == 0 and json.loads(out)["canceled"] == 1
    box.control("POST", "/twsms/reply", json={"from": "0912345678", "text": "好", "message_id": message_id})
    code, out, _ = run("replies", "--provider", dsn, "--json")
    assert code == 0 and json.loads(out)[0]["text"] == "好"
