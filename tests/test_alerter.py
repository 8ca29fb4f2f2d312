"""The alerter with a real aiogram Bot against a loopback fake Telegram Bot API."""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import time
from decimal import Decimal

import pytest

from actors.alerter import AlerterActor, PumpOutbox, fold
from actors.checkpointer import CheckpointerActor
from actors.classifier import ClassifierActor
from actors.inbox import Inbox
from actors.redact import install as install_redaction
from protocol import (
    Alert,
    AlerterStats,
    ErrorRaised,
    Halt,
    PositionView,
    Resume,
    ServiceSettings,
    Severity,
    StrategyView,
    TelegramSettings,
    TradingState,
    WhereIs,
)
from storage import OutboxRow, Store
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.fake_telegram import FakeTelegram
from tests.helpers import ConfirmingNode, Recorded, Recorder, Silence, settled, snapshot

TOKEN = "987654321:AAF4keTokenForLoopbackTestsOnly_xyz"
CHAT, OTHER = 1001, 2002


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def loopback_telegram(
    telegram: FakeTelegram, chat_ids: tuple[int, ...] = (CHAT,), user_ids: tuple[int, ...] = ()
) -> TelegramSettings:
    """The alerter's settings against the loopback Bot API; the tests pump by message."""
    return TelegramSettings(
        api_base=telegram.base_url,
        chat_ids=chat_ids,
        user_ids=user_ids,
        pump_interval_s=3600,
        poll_timeout_s=1,
        request_timeout_s=2,
        backoff_max_s=60,
    )


@pytest.fixture
def telegram():
    fake = FakeTelegram(TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def tree(tmp_path, telegram):
    with start_tree(tmp_path, loopback_telegram(telegram)) as started:
        yield started


@contextlib.contextmanager
def start_tree(tmp_path, settings: TelegramSettings):
    """The alerter with the peers its chat commands reach, on a database of its own."""
    db = tmp_path / "alerts.db"
    store = Store(db)
    run = store.open_run("ALERT-001", "replay")
    store.close()
    inbox, clock = Inbox(), FakeClock()
    spec = SupervisorSpec(
        children=(
            ChildSpec(
                "alerter",
                lambda ctx: AlerterActor.start(
                    ctx, db, "ALERT-001", "replay", telegram=settings, token=TOKEN, clock=clock
                ),
            ),
            ChildSpec("classifier", ClassifierActor.start),
            # Halts and resumes go to the gate, which confirms them as a node would.
            ChildSpec("gate", lambda ctx: ConfirmingNode.start(ctx, inbox, snapshot())),
            ChildSpec("node", lambda ctx: Recorder.start(ctx, inbox, snapshot())),
            ChildSpec(
                "checkpointer",
                lambda ctx: CheckpointerActor.start(
                    ctx, db, run, ServiceSettings(checkpoint_interval_s=3600)
                ),
            ),
        )
    )
    sup = Supervisor.start(spec, parent=Inbox())
    try:
        yield sup, inbox, clock, db
    finally:
        sup.stop(timeout=15)


def alerter(sup):
    """The current alerter, waiting out a restart in progress."""
    deadline = time.monotonic() + 10
    while (ref := sup.ask(WhereIs("alerter"), timeout=5)) is None:
        assert time.monotonic() < deadline, "the alerter did not come back"
        time.sleep(0.01)
    return ref


def pump(sup) -> int:
    return alerter(sup).ask(PumpOutbox(), timeout=30)


def test_a_fatal_error_becomes_one_telegram_message(tree, telegram):
    sup, inbox, _, _ = tree
    classifier = sup.ask(WhereIs("classifier"), timeout=5)
    classifier.ask(ErrorRaised("exec", "BinanceError", "Invalid API-key", -2015), timeout=5)
    inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt))

    assert pump(sup) == 1
    [(chat, text)] = telegram.sent()
    assert chat == CHAT
    assert "CRITICAL" in text and "ALERT-001 replay" in text and "-2015" in text
    assert "Trading halted" in text
    assert pump(sup) == 0, "nothing is sent twice"


def test_a_ten_minute_outage_loses_nothing_and_doubles_nothing(tree, telegram):
    sup, _, clock, db = tree
    telegram.fail_status = 502
    sent_titles = []
    for minute in range(10):  # ten minutes of fake time, an alert each minute
        title = f"alert {minute}"
        sent_titles.append(title)
        alerter(sup).tell(Alert(Severity.WARNING, title, "during the outage", key=title))
        if minute == 5:
            telegram.fail_status = None
            telegram.down()  # second half: the server is gone, connections refused
        for _ in range(4):
            clock.now += 15
            assert pump(sup) == 0
        if minute == 7:  # the alerter restarts in the middle of the outage
            alerter(sup).stop()
    telegram.up()
    assert not telegram.sent()

    clock.now += 61  # past the longest backoff
    assert pump(sup) == 10
    texts = [text for _, text in telegram.sent()]
    assert [t.split("\n")[0] for t in texts] == [f"WARNING: {t}" for t in sent_titles]
    clock.now += 61
    assert pump(sup) == 0
    assert len(telegram.sent()) == 10
    conn = sqlite3.connect(db)
    statuses = conn.execute("SELECT DISTINCT status FROM alert_outbox").fetchall()
    conn.close()
    assert statuses == [("delivered",)]


def test_a_burst_of_identical_errors_is_folded_into_one_message(tree, telegram):
    sup, _, _, _ = tree
    ref = alerter(sup)
    for _ in range(1000):
        ref.tell(Alert(Severity.WARNING, "Unclassified error", "feed: odd thing", key="odd"))
    assert pump(sup) == 1000
    [(_, text)] = telegram.sent()
    assert "x1000" in text


def test_commands_from_an_allowed_chat_act_and_reply(tree, telegram):
    _, inbox, _, _ = tree
    telegram.push_command(CHAT, "/status")
    assert "ALERT-001" in telegram.wait_for(lambda m: "ALERT-001 (replay)" in m[1])[1]

    telegram.push_command(CHAT, "/halt checking the feed")
    telegram.wait_for(lambda m: m[1].startswith("Halted: 1 open order(s) cancelled"))
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert halt.source == "telegram" and "checking the feed" in halt.reason

    telegram.push_command(CHAT, "/resume")
    telegram.wait_for(lambda m: "Send /confirm within 60 s" in m[1])
    telegram.push_command(CHAT, "/confirm")
    telegram.wait_for(lambda m: m[1].startswith("Resumed"))
    inbox.expect(Recorded, where=lambda r: isinstance(r.message, Resume))

    telegram.push_command(CHAT, "/checkpoint")
    telegram.wait_for(lambda m: m[1].startswith("Checkpoint #"))
    telegram.push_command(CHAT, "/positions")
    telegram.wait_for(lambda m: "No open positions" in m[1])


def test_status_and_positions_show_each_strategy(tree, telegram):
    _, _, _, db = tree
    store = Store(db)
    store.write_checkpoint(
        store.open_run("ALERT-001", "replay"),
        snapshot(
            trader_id="ALERT-001",
            positions=(
                PositionView(
                    "BTCUSDT-PERP.BINANCE-Breakout-007", "BTCUSDT-PERP.BINANCE", "LONG",
                    Decimal("0.05"), Decimal("46000"), Decimal("-0.9"), Decimal("12"),
                    strategy_id="Breakout-007",
                ),
            ),
            strategies=(
                StrategyView(
                    "Breakout-007", 5, 4, Decimal("-0.9"), Decimal("12"), Decimal("0.9"),
                    capital=Decimal(50000), equity=Decimal("50011.1"),
                ),
                StrategyView("Breakout-008", 2, 1, Decimal("0"), Decimal("0"), Decimal("0.3")),
            ),
        ),
    )  # fmt: skip
    store.close()
    telegram.push_command(CHAT, "/status")
    status = telegram.wait_for(lambda m: "Breakout-008" in m[1])[1]
    assert "Breakout-007: 4 fills, realized -0.9, unrealized 12, fees 0.9, 1 position(s)" in status
    assert "0 open order(s), return +0.02% of its capital 50000.00" in status
    assert "Breakout-008: 1 fills, realized 0, unrealized 0, fees 0.3, 0 position(s)" in status
    telegram.push_command(CHAT, "/positions")
    assert "[Breakout-007]" in telegram.wait_for(lambda m: "LONG 0.05" in m[1])[1]


def test_halt_and_resume_name_one_strategy(tree, telegram):
    """``/halt ID reason``: a first word naming one of the service's strategies halts it
    alone; any other first word is the account halt's reason."""
    _, inbox, _, db = tree
    store = Store(db)
    store.write_checkpoint(
        store.open_run("ALERT-001", "replay"),
        snapshot(
            trader_id="ALERT-001",
            strategies=(
                StrategyView("Breakout-007", 5, 4, Decimal("-0.9"), Decimal("12"), Decimal("0.9")),
                StrategyView(
                    "Breakout-008", 2, 1, trading_state=TradingState.HALTED, halt_reason="slow"
                ),
            ),
        ),
    )
    store.close()
    telegram.push_command(CHAT, "/halt Breakout-007 too many losses")
    reply = telegram.wait_for(lambda m: m[1].startswith("Halted Breakout-007"))[1]
    assert "the other strategies trade on" in reply
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert halt.strategy_id == "Breakout-007" and halt.reason.endswith(": too many losses")
    telegram.push_command(CHAT, "/resume Breakout-007")
    telegram.wait_for(lambda m: m[1].startswith("Resume Breakout-007: its orders pass again?"))
    telegram.push_command(CHAT, "/confirm")
    telegram.wait_for(lambda m: m[1] == "Resumed Breakout-007: its orders pass again.")
    telegram.push_command(CHAT, "/halt Nobody-1 is odd")
    telegram.wait_for(lambda m: m[1].startswith("Halted: 1 open order(s)"))
    account = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert account.strategy_id is None and account.reason.endswith(": Nobody-1 is odd")
    telegram.push_command(CHAT, "/status")
    status = telegram.wait_for(lambda m: "Breakout-008" in m[1])[1]
    assert "0 open order(s), HALTED (slow)" in status


def test_resume_of_a_word_that_is_no_running_strategy_is_refused(tree, telegram):
    """``/resume Breakout-07`` (a typo) used to resume the whole account, lifting a
    breaker's halt: a word that is not a running strategy's id is refused with the ids;
    the account's resume is ``/resume`` alone."""
    sup, inbox, _, db = tree
    store = Store(db)
    store.write_checkpoint(
        store.open_run("ALERT-001", "replay"),
        snapshot(
            trader_id="ALERT-001",
            strategies=(StrategyView("Breakout-007"), StrategyView("Breakout-008")),
        ),
    )
    store.close()

    def reply_to(text: str) -> str:
        before = len(telegram.sent())
        telegram.push_command(CHAT, text)
        telegram.wait_for(lambda _: len(telegram.sent()) > before)
        return telegram.sent()[before][1]

    for words in ("Breakout-07", "everything please"):
        reply = reply_to(f"/resume {words}")
        word = words.split()[0]
        assert reply.startswith(f"Not resumed: {word} is not a running strategy"), reply
        assert "Breakout-007, Breakout-008" in reply and "/resume alone" in reply
    settled(sup, "gate")
    assert not [r for r in inbox.seen if isinstance(r, Recorded) and isinstance(r.message, Resume)]

    assert reply_to("/resume").startswith("Resume ALERT-001? This lifts the account's halt")
    assert reply_to("/confirm") == "Resumed: trading state ACTIVE."
    resume = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Resume)).message
    assert resume.strategy_id is None


def test_commands_from_any_other_chat_are_ignored(tree, telegram, caplog):
    _, inbox, _, _ = tree
    caplog.set_level(logging.WARNING)
    telegram.push_command(OTHER, "/halt")
    telegram.push_command(CHAT, "/help")  # handled after the foreign one
    telegram.wait_for(lambda m: m[0] == CHAT and "/checkpoint" in m[1])
    assert not [m for m in telegram.sent() if m[0] == OTHER]
    assert not [r for r in inbox.seen if isinstance(r, Recorded) and isinstance(r.message, Halt)]
    assert f"ignored /halt from chat {OTHER} (not allowed)" in caplog.text


def test_the_token_appears_in_no_log_output_or_database(tmp_path, tree, telegram, caplog, capfd):
    install_redaction([TOKEN])
    sup, _, clock, db = tree
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").error("a careless line with the token %s in it", TOKEN)
    telegram.down()
    alerter(sup).tell(Alert(Severity.CRITICAL, "during an outage", "x"))
    clock.now += 100
    pump(sup)
    telegram.up()
    clock.now += 100
    assert pump(sup) == 1
    out, err = capfd.readouterr()
    conn = sqlite3.connect(db)
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert "***" in caplog.text
    for text in (caplog.text, out, err, dump, repr(alerter(sup))):
        assert TOKEN not in text


GROUP, OPERATOR, MEMBER = -1005550001, 3003, 4004


def no_halt_or_resume(sup, inbox: Inbox) -> None:
    settled(sup, "gate")
    assert not [
        r for r in inbox.seen if isinstance(r, Recorded) and isinstance(r.message, Halt | Resume)
    ]


def test_in_a_group_only_listed_users_command_and_only_this_bots_commands(
    tmp_path, telegram, caplog
):
    """A chat id allows a chat, not its members: in an allowed group a member who is not
    in TELEGRAM_USER_IDS is refused; ``/halt@other_bot`` is another bot's command."""
    caplog.set_level(logging.WARNING)
    settings = loopback_telegram(telegram, chat_ids=(GROUP,), user_ids=(OPERATOR,))
    with start_tree(tmp_path, settings) as (sup, inbox, _, _):
        telegram.push_command(GROUP, "/halt flatten", user_id=MEMBER)
        telegram.push_command(GROUP, "/halt", user_id=MEMBER)
        telegram.push_command(GROUP, "/halt@other_bot", user_id=OPERATOR)
        telegram.push_command(GROUP, "/help@fake_bot", user_id=OPERATOR)  # ours: answered
        telegram.wait_for(lambda m: m[0] == GROUP and "/checkpoint" in m[1])
        no_halt_or_resume(sup, inbox)
        assert len(telegram.sent()) == 1, telegram.sent()
        assert f"ignored /halt from chat {GROUP} (user {MEMBER} is not in TELEGRAM_USER_IDS)" in (
            caplog.text
        )
        assert "(addressed to @other_bot, not to this bot)" in caplog.text

        telegram.push_command(GROUP, "/halt@Fake_Bot checking", user_id=OPERATOR)
        telegram.wait_for(lambda m: m[1].startswith("Halted: 1 open order(s) cancelled"))
        halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
        assert f"from user {OPERATOR} in chat {GROUP}: checking" in halt.reason


def test_without_user_ids_a_private_chats_own_user_commands_and_a_groups_members_do_not(
    tmp_path, telegram
):
    settings = loopback_telegram(telegram, chat_ids=(CHAT, GROUP))
    with start_tree(tmp_path, settings) as (sup, inbox, _, _):
        telegram.push_command(GROUP, "/halt", user_id=MEMBER)  # a member with no chat of its own
        telegram.push_command(CHAT, "/help")
        telegram.wait_for(lambda m: m[0] == CHAT and "/checkpoint" in m[1])
        no_halt_or_resume(sup, inbox)


def test_a_command_queued_while_the_service_was_down_is_dropped(tmp_path, telegram, caplog):
    """Telegram keeps a bot's updates 24 h: a /halt flatten sent an hour before the
    service started is logged and dropped, not carried out now."""
    caplog.set_level(logging.WARNING)
    telegram.push_command(CHAT, "/halt flatten", date=int(time.time()) - 3600)
    telegram.push_command(CHAT, "/resume", date=int(time.time()) - 3600)
    with start_tree(tmp_path, loopback_telegram(telegram)) as (sup, inbox, _, _):
        telegram.push_command(CHAT, "/help")
        telegram.wait_for(lambda m: "/checkpoint" in m[1])
        no_halt_or_resume(sup, inbox)
        assert len(telegram.sent()) == 1, telegram.sent()
    assert re.search(
        r"ignored /halt from chat 1001 \(sent 36\d\d s before the service", caplog.text
    )


def test_resume_and_halt_flatten_wait_for_their_senders_confirm(tree, telegram):
    sup, inbox, clock, _ = tree

    def reply_to(text: str) -> str:
        before = len(telegram.sent())
        telegram.push_command(CHAT, text)
        telegram.wait_for(lambda _: len(telegram.sent()) > before)
        return telegram.sent()[before][1]

    prompt = reply_to("/halt flatten closing up")
    assert prompt.startswith("Halt ALERT-001 and close every position at market? Send /confirm")
    assert reply_to("/cancel") == "Cancelled: /halt flatten closing up."
    assert reply_to("/confirm").startswith("Nothing to confirm")
    assert reply_to("/resume").startswith("Resume ALERT-001?")
    clock.now += 61  # past confirm_s
    assert reply_to("/confirm").startswith("Too late: /resume expired unconfirmed")
    no_halt_or_resume(sup, inbox)

    reply_to("/halt flatten closing up")
    assert reply_to("/confirm").startswith("Halted: 1 open order(s) cancelled")
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert halt.mode == "flatten" and halt.reason.endswith(": closing up")


def row(n: int, title: str, text: str, severity: str = "critical", at: str = "") -> OutboxRow:
    return OutboxRow(n, at or f"2026-11-27T10:00:{n:02d}.000+00:00", severity, title, text,
                     "trading", 0, frozenset())  # fmt: skip


def test_a_fold_keeps_every_distinct_alert_in_its_order():
    """Issue 13, defect 15: after an outage, "halted" three times used to be one message
    with the last reason only; the resumes between them were never alerted at all."""
    rows = [
        row(1, "Trading halted", "fatal: authentication (from classifier)."),
        row(2, "Trading resumed", "operator resume.", "info"),
        row(3, "Trading halted", "circuit breaker max_drawdown (from breaker)."),
        row(4, "Trading halted", "circuit breaker max_drawdown (from breaker)."),
        row(5, "Trading resumed", "operator resume.", "info"),
    ]
    [folded] = fold(rows)
    text = folded.text("T-1", "replay")
    lines = text.splitlines()
    assert lines[0].startswith("CRITICAL:") and "5 alerts, in order" in lines[0]
    assert [line[9:] for line in lines[2:]] == [
        "CRITICAL: Trading halted: fatal: authentication (from classifier).",
        "INFO: Trading resumed: operator resume.",
        "CRITICAL: Trading halted: circuit breaker max_drawdown (from breaker). (x2)",
        "INFO: Trading resumed: operator resume.",
    ]


def test_a_fold_of_one_alert_repeated_stays_one_line_with_a_count():
    rows = [row(n, "Unclassified error", "x: boom", "warning") for n in range(1, 1001)]
    [folded] = fold(rows)
    text = folded.text("T-1", "replay")
    assert text.startswith("WARNING: Unclassified error\n") and "(x1000 between" in text


def test_a_chat_halt_that_is_never_confirmed_gets_an_answer(tree, telegram):
    """Issue 13, defect 8: the Telegram /halt waiter had no timeout."""
    sup, inbox, clock, _ = tree
    gate = sup.ask(WhereIs("gate"), timeout=5)
    gate.ask(Silence(), timeout=5)  # the fake gate stops confirming
    telegram.push_command(CHAT, "/halt quietly")
    inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt))
    clock.now += 31
    deadline = time.monotonic() + 15
    while not [m for m in telegram.sent() if "No confirmation within" in m[1]]:
        assert time.monotonic() < deadline, telegram.sent()
        pump(sup)
        time.sleep(0.05)


def test_the_metrics_actor_hears_the_backlog_and_each_failed_delivery(tmp_path, telegram):
    db = tmp_path / "alerts.db"
    Store(db).close()
    inbox = Inbox()
    settings = loopback_telegram(telegram)
    clock = FakeClock()
    spec = SupervisorSpec(
        children=(
            ChildSpec("metrics", lambda ctx: Recorder.start(ctx, inbox)),
            ChildSpec(
                "alerter",
                lambda ctx: AlerterActor.start(
                    ctx, db, "ALERT-002", "replay", telegram=settings, token=TOKEN, clock=clock
                ),
            ),
        )
    )
    sup = Supervisor.start(spec, parent=Inbox())
    try:

        def told() -> AlerterStats:
            got = inbox.expect(Recorded, where=lambda r: isinstance(r.message, AlerterStats))
            assert isinstance(got.message, AlerterStats)
            return got.message

        telegram.fail_status = 502
        alerter(sup).tell(Alert(Severity.WARNING, "one", "during an outage"))
        assert pump(sup) == 0
        assert told() == AlerterStats(pending=1, telegram_failures=1)
        clock.now += 3600  # past the backoff
        telegram.fail_status = None
        assert pump(sup) == 1
        assert told() == AlerterStats(pending=0, telegram_failures=0)
    finally:
        sup.stop(timeout=15)


def test_the_stops_last_delivery_round_does_not_wait_out_the_backoff(tree, telegram):
    """An outage just over when the service stops: the stop's last round delivers what
    is pending at once, instead of finding the backoff not yet due and leaving the
    alerts for a start that may never come (seen in the chaos test)."""
    sup, _, clock, _ = tree
    telegram.down()
    alerter(sup).tell(Alert(Severity.CRITICAL, "during an outage", "x"))
    assert pump(sup) == 0  # refused: the backoff starts
    telegram.up()
    clock.now += 0.1  # well inside the backoff
    assert pump(sup) == 0, "the timer's round still waits out the backoff"
    assert alerter(sup).ask(PumpOutbox(last=True), timeout=30) == 1
    assert any("during an outage" in text for _, text in telegram.sent())
