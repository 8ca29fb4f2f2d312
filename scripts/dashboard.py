"""Operator dashboard: launch, watch and control paper-trading sessions.

    make dashboard                     # http://127.0.0.1:8501, database state/paper.db
    streamlit run scripts/dashboard.py --server.address 127.0.0.1 -- --db PATH \
        [--stale-after SECONDS]

Whoever reaches its port can halt, resume, stop and launch sessions, so it serves
loopback only (``.streamlit/config.toml``, read from the directory ``streamlit run``
starts in, says 127.0.0.1; reach it from elsewhere through an SSH tunnel), and with
``PAPER_DASHBOARD_TOKEN`` set every browser session logs in first. Another address
without a token, a token shorter than 16 characters, or a ``Host`` that is neither
loopback nor in ``PAPER_DASHBOARD_HOSTS`` gets one line and no page
(``sessions.access``). Controls that move money - resume, stop, a strategy's resume,
launching a binance-testnet session - ask for confirmation; the sessions it keeps
running and the parity reports it runs at once are capped.

Everything goes through the service database: sessions and their checkpoints
are read with the read-only queries in ``storage``; halt, resume and stop are
queued on the same control table the CLI uses and carried out by the running
service; presets are validated by the config loader before they are saved or
launched. Strategies registered with ``paper-node strategies add`` are listed with
their backtest metrics and launched as sessions (the entry checked as a config's
``[[strategies]]``); such a session's page sets its paper results beside those
metrics. A session's trades page draws the bars it saw with its fills on them, its
round trips and its trade statistics (``sessions.trades``). The app keeps one database
connection per process (``AppDatabase``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from pathlib import Path

import altair as alt
import streamlit as st

from node.readiness import session_readiness
from protocol import MARKET, BacktestMetrics, Mode, ReadinessSettings, RegisteredStrategy
from sessions.access import (
    TOKEN_ENV,
    allowed_hosts,
    bind_refusal,
    host_refusal,
    token_matches,
)
from sessions.chart import child_chart
from sessions.launcher import LIVE_STATES, Launcher, LaunchError, SessionView
from sessions.parity import ParityOutcome, run_parity
from sessions.plain import literal
from sessions.presets import PRESET_FIELDS, PresetField, default_preset, from_text
from sessions.presets import validate_preset as check_preset
from sessions.promotion import compare, paper_results
from sessions.trades import (
    CAP,
    TradeChart,
    instruments,
    open_rows,
    plot_rows,
    stats_rows,
    trip_rows,
)
from storage import (
    AppDatabase,
    CatchUpRow,
    Command,
    CommandStatus,
    EquityPoint,
    Job,
    PresetBody,
    StorageError,
    StrategyRow,
    span,
)
from storage.readiness import ConeView, StrategyReadiness
from supervisor.config import ConfigError

DB_ENV = "PAPER_NODE_DB"
MAX_SESSIONS_ENV = "PAPER_DASHBOARD_MAX_SESSIONS"
MAX_SESSIONS = 4  # live sessions launched from here at once; each is a whole service
PARITY_RUNS = 1  # parity reports at once: each runs a BacktestEngine in a child process
LOGGED_IN = "_dashboard_logged_in"  # no widget has this key: only the login sets it
WRONG_TOKEN_DELAY_S = 1.0
NEW_PRESET = "(new preset)"
PAGES = ("Sessions", "Session", "Trades", "Readiness", "Registry", "Presets & launch")
ACK_TIMEOUT_S = 20.0
REFRESH_S = 5.0
NONE = "-"
UP, DOWN = "#26a69a", "#ef5350"  # a candle that closed above its open, below it
SIDES = {"BUY": ("#1565c0", "triangle-up"), "SELL": ("#ff8f00", "triangle-down")}
STATE_COLORS = {
    "running": "green",
    "halted": "orange",
    "starting": "blue",
    "unresponsive": "orange",
    "stopped": "gray",
    "crashed": "red",
    "not_running": "gray",
}
CONTROL_NOTES = {
    Command.HALT: "cancels the strategy's open orders and blocks new ones; the node keeps running",
    Command.RESUME: "lets the strategy trade again",
    Command.STOP: "takes a final checkpoint and stops the service",
}


def options(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dashboard", add_help=False)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--stale-after", type=float, default=15.0)
    args, _ = parser.parse_known_args(list(argv))
    if args.db is None:
        args.db = Path(os.environ.get(DB_ENV, "state/paper.db"))
    return args


@st.cache_resource
def app_database(path: str) -> AppDatabase:
    """The one connection of this app process (every browser session shares it)."""
    return AppDatabase(Path(path))


@st.cache_resource
def job_launcher(path: str) -> Launcher:
    return Launcher(app_database(path), Path(path).parent)


@st.cache_resource
def parity_slots() -> threading.BoundedSemaphore:
    """The parity reports running now, across every browser session of this process."""
    return threading.BoundedSemaphore(PARITY_RUNS)


@st.cache_resource
def launch_lock() -> threading.Lock:
    """Counting the live sessions and launching one more is one step for all browsers."""
    return threading.Lock()


# ---------------------------------------------------------------- who may use it


@st.cache_resource
def tell_the_terminal(line: str) -> None:
    """A refusal goes to the server's terminal once, beside the page that shows it."""
    print(f"dashboard: {line}", file=sys.stderr, flush=True)


def admitted() -> bool:
    """The address, Host and login rules (``sessions.access``), before any page: a
    refusal or the login form is all a browser gets until they pass."""
    token = os.environ.get(TOKEN_ENV, "")
    address = st.get_option("server.address")
    refusal = bind_refusal(None if address is None else str(address), token) or host_refusal(
        st.context.headers.get("Host"), allowed_hosts(os.environ)
    )
    if refusal is not None:
        tell_the_terminal(refusal)
        st.error(refusal)
        return False
    if not token or st.session_state.get(LOGGED_IN) is True:
        return True
    st.title("Paper trading: log in")
    with st.form("login"):
        given = st.text_input(
            "Dashboard token", type="password", key="login_token", help=f"{TOKEN_ENV}"
        )
        submitted = st.form_submit_button("Log in", key="login", type="primary")
    if submitted:
        if token_matches(given, token):
            st.session_state[LOGGED_IN] = True
            st.rerun()
        time.sleep(WRONG_TOKEN_DELAY_S)  # this browser session's guesses, one a second
        st.error("Wrong token.")
    return False


def confirmation(key: str, question: str, label: str) -> str | None:
    """A held action (``st.session_state[key]``, e.g. the strategy it names) with its
    question, Confirm and Cancel; the held value on the run Confirm was pressed."""
    held = st.session_state.get(key)
    if not isinstance(held, str):
        return None
    st.warning(question)
    yes, no = st.columns(2)
    if yes.button(label, key=f"{key}_yes", type="primary"):
        st.session_state.pop(key, None)
        return held
    if no.button("Cancel", key=f"{key}_no"):
        st.session_state.pop(key, None)
        st.rerun()
    return None


def session_cap() -> int:
    """``PAPER_DASHBOARD_MAX_SESSIONS`` (1 to 64), else ``MAX_SESSIONS``."""
    raw = os.environ.get(MAX_SESSIONS_ENV, "").strip()
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 64:
        return int(raw)
    return MAX_SESSIONS


def testnet_preset(appdb: AppDatabase, preset: str) -> bool:
    body = appdb.load_preset(preset) or {}
    return body.get("service", {}).get("mode") == Mode.BINANCE_TESTNET.value


def capped_launch(launcher: Launcher, start: Callable[[], Job]) -> Job:
    """``start`` unless this dashboard already keeps ``session_cap()`` sessions live."""
    with launch_lock():
        live_count = sum(
            1
            for v in launcher.sessions(stale_after_s=60)
            if v["pid"] is not None and v["state"] in LIVE_STATES
        )
        cap = session_cap()
        if live_count >= cap:
            raise LaunchError(
                f"not launched: {live_count} sessions launched from this dashboard are "
                f"live, the most it keeps at once ({MAX_SESSIONS_ENV}); stop one first"
            )
        return start()


# ---------------------------------------------------------------- formatting


def money(value: str | None) -> str:
    """Round for display only; the database keeps exact decimals."""
    if value is None:
        return NONE
    try:
        return f"{Decimal(value):,.2f}"
    except InvalidOperation:
        return value


def state_badge(state: str) -> str:
    """Markdown for a coloured state, for titles and captions."""
    return f":{STATE_COLORS.get(state, 'gray')}[{state}]"


def open_session(trader_id: str, page: str = "Session") -> None:
    st.session_state["page"] = page
    st.session_state["trader"] = trader_id


def live[**P](draw: Callable[P, None]) -> Callable[P, None]:
    """``draw`` as a fragment that redraws itself while auto-refresh is on.

    Only the fragment reruns, so a half-typed reason or an open confirmation
    elsewhere on the page survives the refresh. A database error inside it is
    shown in place, as it would be on a full run.
    """

    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            draw(*args, **kwargs)
        except StorageError as exc:
            st.error(f"Database error: {exc}")

    guarded.__name__ = guarded.__qualname__ = f"live_{draw.__name__}"
    every = REFRESH_S if st.session_state.get("auto_refresh", True) else None
    fragment: Callable[P, None] = st.fragment(guarded, run_every=every)
    return fragment


# ---------------------------------------------------------------- sessions page


def sessions_page(launcher: Launcher, stale_after_s: float) -> None:
    st.title("Paper-trading sessions")
    live(sessions_table)(launcher, stale_after_s)
    ids = [v["trader_id"] for v in launcher.sessions(stale_after_s)]
    if ids:
        chosen = st.selectbox("Session", ids, key="sessions_pick")
        if chosen is not None:
            st.button("Open session", key="open_session", on_click=open_session, args=(chosen,))


def sessions_table(launcher: Launcher, stale_after_s: float) -> None:
    views = launcher.sessions(stale_after_s)
    if not views:
        st.info("No sessions yet. Save a preset and launch one under “Presets & launch”.")
        return
    counts = {s: sum(1 for v in views if v["state"] == s) for s in ("running", "halted")}
    crashed = sum(1 for v in views if v["state"] == "crashed")
    cols = st.columns(3)
    cols[0].metric("Running", counts["running"])
    cols[1].metric("Halted", counts["halted"])
    cols[2].metric("Crashed", crashed)
    st.dataframe(
        [
            {
                "session": v["trader_id"],
                "state": v["state"],
                "mode": v["mode"] or NONE,
                "preset": v["preset"] or NONE,
                "registered strategy": NONE if v["registered"] is None else v["registered"].name,
                "heartbeat age (s)": v["heartbeat_age_s"],
                "balance": money(v["balance"]),
                "equity": money(v["equity"]),
                "realized PnL": money(v["realized_pnl"]),
                "unrealized PnL": money(v["unrealized_pnl"]),
                "open orders": v["open_orders"],
                "positions": len(v["positions"]),
                "fills": v["fills"],
                "pid": v["pid"],
                "exit code": v["exit_code"],
                "exit reason": v["exit_line"] or NONE,
            }
            for v in views
        ],
        hide_index=True,
    )


# ---------------------------------------------------------------- one session


def control_panel(appdb: AppDatabase, view: SessionView) -> None:
    trader_id = view["trader_id"]
    live = view["state"] in ("running", "halted", "unresponsive", "starting")
    allowed = {
        Command.HALT: view["state"] == "running",
        Command.RESUME: view["state"] == "halted",
        Command.STOP: live,
    }
    st.subheader("Control")
    reason = st.text_input("Reason (recorded and alerted)", key="control_reason")
    cols = st.columns(3)
    for col, command in zip(cols, Command, strict=True):
        if col.button(
            command.value.capitalize(),
            key=f"control_{command.value}",
            disabled=not allowed[command],
        ):
            st.session_state["confirm"] = command.value
            st.session_state.pop("control_result", None)
    pending = st.session_state.get("confirm")
    if isinstance(pending, str):
        command = Command(pending)
        st.warning(f"{command.value.capitalize()} {trader_id}? This {CONTROL_NOTES[command]}.")
        yes, no = st.columns(2)
        if yes.button(f"Confirm {command.value}", key="control_confirm", type="primary"):
            st.session_state.pop("confirm", None)
            st.session_state["control_result"] = run_command(
                appdb, trader_id, command, reason or "from the dashboard"
            )
            st.rerun()  # redraw the buttons for the state the command left behind
        if no.button("Cancel", key="control_cancel"):
            st.session_state.pop("confirm", None)
            st.rerun()
    result = st.session_state.get("control_result")
    if isinstance(result, tuple) and len(result) == 2:
        ok, text = result
        (st.success if ok else st.error)(literal(str(text)))


def strategy_controls(appdb: AppDatabase, view: SessionView) -> None:
    """One strategy halted or resumed while the others trade (``halt --strategy``)."""
    strategies = {s["strategy_id"]: s for s in view["strategies"]}
    live = view["state"] in ("running", "halted", "unresponsive", "starting")
    left, halt_col, resume_col = st.columns([2, 1, 1])
    picked = left.selectbox("Strategy", list(strategies), key="strategy_pick")
    chosen = strategies.get(str(picked))
    halted = chosen is not None and chosen["trading_state"] == "HALTED"
    reason = str(st.session_state.get("control_reason") or "from the dashboard")
    if halt_col.button(
        "Halt strategy",
        key="strategy_halt",
        disabled=not (live and chosen is not None and not halted),
    ):
        st.session_state["strategy_result"] = run_command(
            appdb, view["trader_id"], Command.HALT, reason, strategy_id=str(picked)
        )
        st.rerun()
    if resume_col.button("Resume strategy", key="strategy_resume", disabled=not (live and halted)):
        st.session_state["strategy_confirm"] = str(picked)  # resuming lets it trade: ask
        st.session_state.pop("strategy_result", None)
    held = st.session_state.get("strategy_confirm")
    resumed = confirmation(
        "strategy_confirm", f"Resume {held}? Its orders pass again.", "Confirm resume"
    )
    if resumed is not None:
        st.session_state["strategy_result"] = run_command(
            appdb, view["trader_id"], Command.RESUME, reason, strategy_id=resumed
        )
        st.rerun()
    result = st.session_state.get("strategy_result")
    if isinstance(result, tuple) and len(result) == 2:
        ok, text = result
        (st.success if ok else st.error)(literal(str(text)))


def run_command(
    appdb: AppDatabase,
    trader_id: str,
    command: Command,
    reason: str,
    strategy_id: str | None = None,
) -> tuple[bool, str]:
    """Queue ``command`` on the control table and wait for the service's acknowledgement."""
    try:
        request_id = appdb.control.submit(trader_id, command, reason, strategy_id)
        with st.spinner(f"{command.value}: waiting for {trader_id} to acknowledge…"):
            request = appdb.control.wait(request_id, ACK_TIMEOUT_S)
    except StorageError as exc:
        return False, f"{command.value} not queued: {exc}"
    if request.status is CommandStatus.DONE:
        return True, f"{command.value} done: {request.result}"
    if request.status is CommandStatus.FAILED:
        return False, f"{command.value} failed: {request.result}"
    return False, (
        f"{command.value} is queued (request {request_id}) but {trader_id} has not "
        f"acknowledged it within {ACK_TIMEOUT_S:.0f} s; is the service running?"
    )


def pick_session(launcher: Launcher, stale_after_s: float) -> SessionView | None:
    """The session chosen in the page's selector (the session and trades pages share it)."""
    views = launcher.sessions(stale_after_s)
    ids = [v["trader_id"] for v in views]
    if not ids:
        st.info("No sessions yet.")
        return None
    if st.session_state.get("trader") not in ids:
        st.session_state["trader"] = ids[0]
    trader_id = st.selectbox("Session", ids, key="trader")
    return next(v for v in views if v["trader_id"] == trader_id)


def session_page(appdb: AppDatabase, launcher: Launcher, stale_after_s: float) -> None:
    view = pick_session(launcher, stale_after_s)
    if view is None:
        return
    trader_id = view["trader_id"]
    live(session_header)(view["trader_id"], launcher, stale_after_s)
    st.button(
        "Trades and statistics",
        key="open_trades",
        on_click=open_session,
        args=(trader_id, "Trades"),
    )
    control_panel(appdb, view)
    live(session_details)(appdb, launcher, trader_id, stale_after_s)
    parity_panel(appdb.path, trader_id)


def parity_panel(db: Path, trader_id: str) -> None:
    """The session beside BacktestEngine on the bars it played (on request: the report
    runs a backtest, seconds to minutes, in a child process)."""
    st.subheader("Parity with the backtest")
    key = f"parity:{trader_id}"
    if st.button("Run the parity report", key=f"run-{key}"):
        slots = parity_slots()
        if not slots.acquire(blocking=False):
            st.warning(
                f"{PARITY_RUNS} parity report(s) already running on this dashboard (the "
                "most at once); try again when it is done."
            )
            return
        try:
            with st.spinner("Running BacktestEngine on the bars the session played..."):
                st.session_state[key] = run_parity(db, trader_id)
        finally:
            slots.release()
    outcome: ParityOutcome | None = st.session_state.get(key)
    if outcome is None:
        st.caption(
            "Fills, realized PnL, fees and balance beside BacktestEngine's on the same bars."
        )
        return
    report = outcome.report
    if report is None:
        st.error(f"No parity report: {outcome.error}")
        return
    s, b = report["session"], report["backtest"]
    if report["equal"]:
        st.success(
            f"Equal to the backtest over {s['bars']:,} bars: every fill, the balance and PnL."
        )
    else:
        st.warning(f"Different from the backtest over {s['bars']:,} bars.")
    rows = [
        ("fills", str(s["fills"]), str(b["fills"])),
        ("realized PnL", s["realized_pnl"], b["realized_pnl"]),
        ("fees", s["fees"], b["fees"]),
        (f"balance {s['currency']}", s["balance"], b["balance"]),
    ]
    st.dataframe(
        [{"": name, "session": ours, "backtest": theirs} for name, ours, theirs in rows],
        hide_index=True,
    )
    divergence = report["first_divergence"]
    if divergence is not None:
        st.markdown(f"**First diverging fill**: #{divergence['index'] + 1}")
        sides = (("session", divergence["session"]), ("backtest", divergence["backtest"]))
        st.dataframe(
            [{"": side, **(trade or {"fill": "no more fills"})} for side, trade in sides],
            hide_index=True,
        )
    for halt in report["halts"]:
        where = "" if halt["bar"] is None else f" at bar {halt['bar']}"
        if halt["source"] == MARKET:
            alike = "as the backtest did" if report["halts_equal"] else "unlike the backtest"
            st.info(f"A breaker halted the session{where} ({literal(halt['reason'])}), {alike}.")
        else:
            st.info(
                f"Halted{where} during the session ({literal(halt['reason'])}): a backtest "
                "does not halt for that."
            )
    for note in report["notes"]:
        st.caption(note)
    st.caption(f"BacktestEngine ran {report['backtest_s']:.1f} s.")


def strategy_row(row: StrategyRow) -> dict[str, object]:
    """A strategy's books, with its return on its own capital in percent beside them."""
    gain = row["return_on_capital"]
    return {
        **row,
        "return on capital": NONE if gain is None else f"{Decimal(gain) * 100:+.2f}%",
    }


def session_header(trader_id: str, launcher: Launcher, stale_after_s: float) -> None:
    view = launcher.session(trader_id, stale_after_s)
    if view is None:
        st.error(f"{trader_id} is gone from the database")
        return
    age = view["heartbeat_age_s"]
    st.title(f"{trader_id} — {state_badge(view['state'])}")
    registered = view["registered"]
    origin = "" if registered is None else f"registered strategy {registered.name} · "
    st.caption(
        f"{origin}mode {view['mode'] or NONE} · preset {view['preset'] or NONE} · "
        f"pid {view['pid']} · heartbeat {NONE if age is None else f'{age:.1f}'} s ago"
    )
    if view["exit_line"] is not None:
        st.error(f"exit code {view['exit_code']}: {literal(view['exit_line'])}")


def catch_up_row(c: CatchUpRow) -> dict[str, str]:
    """A restart's catch-up as a table row: what it played, how long, and the gap left."""
    played_s = max(0, c["to_ns"] - c["from_ns"]) / 1e9 - c["gap_s"]
    return {
        "at": c["at"],
        "market played": span(played_s),
        "trades": str(c["trades"]),
        "bars": str(c["bars"]),
        "fills": str(c["fills"]),
        "settlements": str(c["settlements"]),
        "took": f"{c['took_s']:.1f} s",
        "gap left": span(c["gap_s"]) if c["gap_s"] > 0 or c["failure"] else "none",
        "why": c["failure"],
    }


def session_details(
    appdb: AppDatabase, launcher: Launcher, trader_id: str, stale_after_s: float
) -> None:
    view = launcher.session(trader_id, stale_after_s)
    if view is None:
        st.error(f"{trader_id} is gone from the database")
        return
    cols = st.columns(4)
    currency = view["currency"] or ""
    cols[0].metric(f"Balance {currency}", money(view["balance"]))
    gain = view["account_return"]
    cols[1].metric(
        f"Equity {currency}",
        money(view["equity"]),
        None if gain is None else f"{Decimal(gain) * 100:+.2f}% on the start",
    )
    cols[2].metric("Realized PnL", money(view["realized_pnl"]))
    cols[3].metric("Unrealized PnL", money(view["unrealized_pnl"]))

    curve = appdb.equity_curve(trader_id)
    if view["registered"] is not None:
        promotion_table(view, view["registered"], curve)
    st.subheader("Equity curve")
    if curve:
        equity_charts(curve, currency)
    else:
        st.info("No checkpoint yet.")

    if view["catch_ups"]:  # a restarted binance-sandbox session played what it missed
        st.subheader("Catch-ups after restarts")
        st.dataframe([catch_up_row(c) for c in view["catch_ups"]], hide_index=True)
    st.subheader("Positions")
    positions = [dict(p) for p in view["positions"]]
    st.dataframe(positions or [{"positions": "none"}], hide_index=True)
    if view["strategies"]:  # each strategy's share of the account (a checkpoint's books)
        st.subheader("Strategies")
        st.dataframe([strategy_row(s) for s in view["strategies"]], hide_index=True)
        strategy_controls(appdb, view)
    st.subheader("Open orders")
    orders = appdb.open_orders(trader_id)
    st.dataframe(
        [{k: str(v) for k, v in asdict(o).items() if k != "instrument_id"} for o in orders]
        or [{"open orders": "none"}],
        hide_index=True,
    )
    st.subheader("Events")
    events = appdb.events(trader_id, 200)
    st.dataframe(
        [
            {"at": e["at"], "kind": e["kind"], "details": json.dumps(e["payload"])}
            for e in reversed(events)
        ]
        or [{"events": "none"}],
        hide_index=True,
    )
    st.subheader("Alerts")
    st.dataframe(
        [
            {
                "created": a["created_at"],
                "severity": a["severity"],
                "title": a["title"],
                "delivery": a["status"],
                "attempts": a["attempts"],
                "delivered at": a["delivered_at"] or NONE,
                "chats": a["delivered_chats"] or NONE,
            }
            for a in appdb.alerts(trader_id)
        ]
        or [{"alerts": "none"}],
        hide_index=True,
    )
    history = appdb.control_history(trader_id)
    if history:
        st.subheader("Operator commands")
        st.dataframe(history, hide_index=True)
    job = appdb.job(trader_id)
    if job is not None:
        with st.expander("Service log (tail)", expanded=view["state"] == "crashed"):
            st.code(log_tail(Path(job.log_path)), language=None)


def promotion_table(
    view: SessionView, registered: RegisteredStrategy, curve: list[EquityPoint]
) -> None:
    """The session's paper results beside the backtest metrics of the entry it runs."""
    st.subheader(f"Paper vs backtest: {registered.name}")
    rows = compare(registered.metrics, paper_results(view, curve))
    st.dataframe(
        [
            {
                "metric": r.metric,
                "backtest (registered)": r.backtest,
                "paper (this session)": r.paper,
                "counted": r.note,
            }
            for r in rows
        ],
        hide_index=True,
    )
    st.caption(
        f"{registered.entry.strategy_path}, registered {registered.registered_at}: its "
        "metrics as they were when this session was launched."
    )


# ---------------------------------------------------------------- a session's trades


def trades_page(appdb: AppDatabase, launcher: Launcher, stale_after_s: float) -> None:
    view = pick_session(launcher, stale_after_s)
    if view is None:
        return
    trader_id = view["trader_id"]
    st.title(f"Trades: {trader_id}")
    live(trades_details)(appdb, trader_id, view["registered"])


def trades_details(
    appdb: AppDatabase, trader_id: str, registered: RegisteredStrategy | None
) -> None:
    """The bars the session saw with its fills, its round trips, its statistics."""
    played = appdb.played(trader_id)
    if played is None:
        st.info(f"{trader_id} has not run yet.")
        return
    names = instruments(played) or ["-"]
    instrument = (
        st.selectbox("Instrument", names, key="trades_instrument") if len(names) > 1 else names[0]
    )
    # Built in a child with a time limit, from the bars the session played only.
    chart = child_chart(played, str(instrument))
    if chart.total > CAP:  # a window of the bars; the last ones unless moved
        end = st.slider("Last bar drawn", CAP, chart.total, chart.total, step=100)
        if end != chart.total:
            chart = child_chart(played, str(instrument), end=end)
    st.subheader(f"Bars and fills: {chart.instrument_id}")
    candle_chart(chart)
    for note in chart.notes:
        st.caption(note)
    try:
        report = appdb.trade_report(trader_id)
    except StorageError as exc:
        st.info(f"No trade statistics yet: {exc}")
        return
    currency = report["currency"]
    st.subheader(f"Round trips ({len(report['round_trips'])})")
    st.dataframe(
        trip_rows(report["round_trips"], currency) or [{"round trips": "none closed yet"}],
        hide_index=True,
    )
    if report["open_positions"]:
        st.caption("Still open (as of their last fill; not in the statistics):")
        st.dataframe(open_rows(report["open_positions"], currency), hide_index=True)
    title = (
        "Statistics" if registered is None else f"Statistics beside {registered.name}'s backtest"
    )
    st.subheader(title)
    metrics = None if registered is None else registered.metrics
    rows = stats_rows(report, metrics)
    st.dataframe(rows, hide_index=True, height=35 * (len(rows) + 1) + 3)  # every row, no scroll
    st.caption(
        f"Money in {currency}, from a starting balance of {report['starting_balance']:,}; "
        "Sharpe and Sortino on daily returns, drawdown on the realized balance."
        + ("" if registered is None else " The backtest's figures as registered.")
    )


def candle_chart(chart: TradeChart) -> None:
    """Candles (a rule from low to high, a bar from open to close) and the fills as
    triangles at their price, on the bar's market time. SVG, so each mark is an
    element a test can count."""
    title = "market time (UTC)"
    data = plot_rows(chart)
    candles, fills = data.candles, data.fills
    unzeroed = alt.Scale(zero=False)
    time = alt.Scale(type="utc", domain=data.domain, nice=False)
    x = alt.X("x:T", title=title, scale=time)
    y = alt.Y("price:Q", scale=unzeroed, title="price")
    color = alt.condition("datum.close >= datum.open", alt.value(UP), alt.value(DOWN))
    layers: list[alt.Chart] = []
    if candles:
        base = alt.Chart(alt.InlineData(values=candles))
        layers.append(
            base.mark_rule(clip=True).encode(
                x=x, y=alt.Y("low:Q", scale=unzeroed, title="price"), y2="high:Q", color=color
            )
        )
        layers.append(
            base.mark_bar(clip=True).encode(
                x=alt.X("x0:T", title=title, scale=time),
                x2="x1",
                y="open:Q",
                y2="close:Q",
                color=color,
                tooltip=["bar:Q", "open:Q", "high:Q", "low:Q", "close:Q"],
            )
        )
    if fills:
        sides = list(SIDES)
        legend = alt.Legend(title="fill", symbolStrokeWidth=0, symbolSize=120)
        layers.append(
            alt.Chart(alt.InlineData(values=fills))
            .mark_point(
                filled=True, size=150, opacity=1, stroke="#222222", strokeWidth=0.8, clip=True
            )
            .encode(
                x=x,
                y=y,
                color=alt.Color(
                    "side:N",
                    scale=alt.Scale(domain=sides, range=[c for c, _ in SIDES.values()]),
                    legend=legend,
                ),
                shape=alt.Shape(
                    "side:N",
                    scale=alt.Scale(domain=sides, range=[s for _, s in SIDES.values()]),
                    legend=legend,
                ),
                tooltip=["side:N", "price:Q", "quantity:N", "strategy:N", "bar:Q"],
            )
        )
    if not layers:
        st.info("No bars and no fills to draw yet.")
        return
    layered = alt.layer(*layers).properties(
        height=460, usermeta={"embedOptions": {"renderer": "svg"}}
    )
    st.altair_chart(layered.interactive(bind_y=False), width="stretch")


def equity_charts(curve: list[EquityPoint], currency: str) -> None:
    """Equity against its running peak, and the drawdown below that peak."""
    rows: list[dict[str, str | float]] = [
        {
            "time": p["at"],
            "equity": float(p["equity"]),  # floats for plotting only
            "peak": float(p["peak"]),
            "drawdown": float(p["drawdown_pct"]),
        }
        for p in curve
    ]
    base = alt.Chart(alt.InlineData(values=rows))
    x = alt.X("time:T", title=None)
    equity = base.mark_line(strokeWidth=2).encode(
        x=x,
        y=alt.Y("equity:Q", scale=alt.Scale(zero=False), title=f"equity {currency}"),
        tooltip=["time:T", "equity:Q", "peak:Q"],
    )
    peak = base.mark_line(strokeDash=[4, 3], color="#999999").encode(x=x, y="peak:Q")
    st.altair_chart(equity + peak, width="stretch")
    st.subheader("Drawdown (%)")
    drawdown = base.mark_area(color="#d62728", opacity=0.55).encode(
        x=x,
        y=alt.Y("drawdown:Q", title="drawdown %"),
        tooltip=["time:T", "drawdown:Q"],
    )
    st.altair_chart(drawdown, width="stretch")


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16_384))
            text = f.read().decode(errors="replace")
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


# ---------------------------------------------------------------- readiness

VERDICT_COLORS = {"READY": "green", "NOT YET": "orange", "NO": "red"}
OWN_ENTRY = "(the entry it was launched from)"


def readiness_page(appdb: AppDatabase, launcher: Launcher, stale_after_s: float) -> None:
    """``paper-node report readiness`` for the chosen session: each strategy's verdict,
    its reasons, the backtest's bootstrap cone with the paper curve inside, and every
    criterion with its figure, threshold and source (judged when the page is drawn)."""
    view = pick_session(launcher, stale_after_s)
    if view is None:
        return
    trader_id = view["trader_id"]
    st.title(f"Readiness: {trader_id}")
    names = [e.name for e in appdb.registry()]
    launched = view["registered"]
    choices = [OWN_ENTRY, *names]
    index = 1 + names.index(launched.name) if launched and launched.name in names else 0
    chosen = st.selectbox("Judge against the registry entry", choices, index=index)
    strategy = None if chosen == OWN_ENTRY else str(chosen)
    try:
        report = session_readiness(appdb.path, trader_id, ReadinessSettings(), strategy)
    except StorageError as exc:
        st.info(f"No readiness report yet: {exc}")
        return
    if not report.strategies:
        st.info("No strategy has traded yet: NOT YET.")
    for judged in report.strategies:
        readiness_section(judged)
    st.caption(
        "Thresholds are the [readiness] defaults; `paper-node report readiness --config` "
        "judges with a config's. What each criterion means and what the verdict does not "
        "promise: docs/readiness.md."
    )


def readiness_section(judged: StrategyReadiness) -> None:
    verdict = judged.verdict.value
    against = judged.registered or "no registry entry"
    st.subheader(f"{judged.strategy_id}: :{VERDICT_COLORS[verdict]}[{verdict}]")
    st.caption(f"against {against}")
    for reason in judged.reasons:
        st.markdown(f"- {literal(reason)}")
    if judged.cone is not None:
        cone_chart(judged.cone)
    st.table(  # HTML, not a canvas: the figures are text a reader can copy
        [
            {
                "group": c.group,
                "criterion": c.title,
                "figure": "—" if c.figure is None else f"{c.figure:.4g}",
                "threshold": markdown_safe(c.threshold),
                "status": c.status.value,
                "detail": markdown_safe(c.detail),
                "source": markdown_safe(c.source),
            }
            for c in judged.criteria
        ]
    )


def markdown_safe(text: str) -> str:
    """A cell of ``st.table`` is markdown: ">= 11" would quote, "-" would be a bullet."""
    if text == NONE:
        return "—"
    return text.replace(">=", "≥").replace("<=", "≤")


def cone_chart(cone: ConeView) -> None:
    """The backtest's bootstrap cone over the paper days (a band from its lower to its
    upper edge, its mean dashed) and the paper's cumulative return as a line. SVG, so a
    test can find the band and the line."""
    rows = [
        {"day": day, "lower": lo * 100, "upper": hi * 100, "mean": mu * 100, "paper": p * 100}
        for day, lo, hi, mu, p in zip(
            cone.days, cone.lower, cone.upper, cone.mean, cone.paper, strict=True
        )
    ]
    base = alt.Chart(alt.InlineData(values=rows))
    x = alt.X("day:T", title="paper day (UTC)")
    band = base.mark_area(opacity=0.25, color="#1565c0").encode(
        x=x, y=alt.Y("lower:Q", title="cumulative return %"), y2="upper:Q"
    )
    mean = base.mark_line(strokeDash=[4, 3], color="#1565c0").encode(x=x, y="mean:Q")
    paper = base.mark_line(strokeWidth=2, color="#ff8f00", point=True).encode(
        x=x, y="paper:Q", tooltip=["day:T", "paper:Q", "lower:Q", "upper:Q"]
    )
    st.altair_chart((band + mean + paper).properties(height=320), width="stretch", theme=None)
    st.caption("Blue band: the backtest's bootstrap cone; dashed: its mean; orange: paper.")


# ---------------------------------------------------------------- the strategy registry


def registry_page(appdb: AppDatabase, launcher: Launcher, stale_after_s: float) -> None:
    st.title("Strategy registry")
    entries = appdb.registry()
    if not entries:
        st.info(
            "No strategy registered yet. A research pipeline registers each strategy it "
            "validated with `paper-node strategies add NAME --strategy-path P --config-path P "
            "--strategy-config JSON --metrics JSON`."
        )
        return
    sessions: dict[str, list[str]] = {}
    for v in launcher.sessions(stale_after_s):
        if v["registered"] is not None:
            sessions.setdefault(v["registered"].name, []).append(v["trader_id"])
    st.dataframe([registry_row(e, sessions.get(e.name, [])) for e in entries], hide_index=True)
    registry_launch(appdb, launcher, [e.name for e in entries])


def registry_row(entry: RegisteredStrategy, sessions: list[str]) -> dict[str, str]:
    """An entry as one row: its import paths, its config, every declared metric exactly
    as registered, and the sessions launched from it."""
    metrics = {
        name: NONE if (value := getattr(entry.metrics, name)) is None else str(value)
        for name in BacktestMetrics.model_fields
    }
    evidence = entry.evidence
    fills = evidence.fills
    return {
        "name": entry.name,
        "strategy_path": entry.entry.strategy_path,
        "config_path": entry.entry.config_path,
        "config": json.dumps(entry.entry.config, sort_keys=True),
        **metrics,
        "daily returns": str(len(evidence.daily_returns)),
        "trade returns": str(len(evidence.trade_returns)),
        "trials": NONE if evidence.trials is None else str(evidence.trials),
        "slippage bps": NONE if fills.slippage_bps is None else str(fills.slippage_bps),
        "fee bps": NONE if fills.fee_bps is None else str(fills.fee_bps),
        "registered": entry.registered_at,
        "sessions": ", ".join(sorted(sessions)) or NONE,
    }


def registry_launch(appdb: AppDatabase, launcher: Launcher, names: list[str]) -> None:
    st.subheader("Paper-trade a registered strategy")
    presets = appdb.preset_names()
    if not presets:
        st.info(
            "Save a preset first (under “Presets & launch”): it gives the session its "
            "market, account, replay, risk limits and breakers."
        )
        return
    st.caption(
        "The session runs the registered entry as its one strategy; the preset gives it the "
        "market, account, replay, risk limits and breakers (its strategy and sizing fields "
        "are the bundled EMA cross's, which does not run)."
    )
    cols = st.columns(2)
    name = cols[0].selectbox("Registered strategy", names, key="registry_pick")
    preset = cols[1].selectbox("Preset", presets, key="registry_preset")
    go: tuple[str, str] | None = None
    if (
        st.button("Launch paper session", key="registry_launch", type="primary")
        and name is not None
        and preset is not None
    ):
        if testnet_preset(appdb, preset):  # it trades with this dashboard's keys: ask
            st.session_state["registry_confirm"] = json.dumps([name, preset])
        else:
            go = (name, preset)
    held = st.session_state.get("registry_confirm")
    if isinstance(held, str):
        held_name, held_preset = json.loads(held)
        confirmed = confirmation(
            "registry_confirm",
            f"{held_name} with preset {held_preset!r} is a binance-testnet session: it "
            "trades on the testnet account with the API keys in this dashboard's "
            "environment. Launch it?",
            "Confirm launch",
        )
        if confirmed is not None:
            go = (str(held_name), str(held_preset))
    if go is not None:
        name, preset = go
        try:
            with st.spinner(f"Checking {name} where it will run…"):
                job = capped_launch(launcher, lambda: launcher.launch_registered(*go))
        except (LaunchError, StorageError) as exc:
            st.error(str(exc))
        else:
            st.session_state["registry_launched"] = job.trader_id
            st.success(
                f"Launched {job.trader_id} (pid {job.pid}) running {name} with preset "
                f"{preset!r}; config {job.config_path}"
            )
    launched = st.session_state.get("registry_launched")
    if isinstance(launched, str):
        st.button(
            f"Open {launched}",
            key="open_registry_launched",
            on_click=open_session,
            args=(launched,),
        )


# ---------------------------------------------------------------- presets and launch


def preset_form(appdb: AppDatabase, env: dict[str, str]) -> None:
    st.subheader("Presets")
    names = appdb.preset_names()
    if "preset_pick_next" in st.session_state:
        st.session_state["preset_pick"] = st.session_state.pop("preset_pick_next")
    choice = st.selectbox(
        "Edit preset", [NEW_PRESET, *names], key="preset_pick", on_change=forget_preset_fields
    )
    existing = None if choice == NEW_PRESET else appdb.load_preset(choice)
    body = existing if existing is not None else default_preset()
    with st.form("preset_form"):
        name = st.text_input("Name", value="" if existing is None else choice, key="preset_name")
        texts: dict[str, str] = {}
        sections = sorted({f.section for f in PRESET_FIELDS}, key=_section_order)
        for section in sections:
            st.markdown(f"**{section}**")
            fields = [f for f in PRESET_FIELDS if f.section == section]
            cols = st.columns(3)
            for i, f in enumerate(fields):
                texts[f.path] = field_input(cols[i % 3], f, body)
        saved = st.form_submit_button("Save preset", key="preset_save")
    if saved:
        new_body: PresetBody = {}
        for f in PRESET_FIELDS:
            value = from_text(f, texts[f.path])
            if value is not None:  # an optional limit left empty: not set
                new_body.setdefault(f.section, {})[f.key] = value
        try:
            check_preset(name, new_body, env)
        except ConfigError as exc:
            st.error("Not saved — fix these fields:\n" + "\n".join(f"- {p}" for p in exc.problems))
        else:
            appdb.save_preset(name, new_body)
            st.session_state["preset_pick_next"] = name
            st.session_state["flash"] = f"Preset {name!r} saved."
            st.rerun()
    flash = st.session_state.pop("flash", None)
    if isinstance(flash, str):
        st.success(flash)
    if existing is not None and st.button(f"Delete preset {choice!r}", key="preset_delete"):
        appdb.delete_preset(choice)
        st.session_state["preset_pick_next"] = NEW_PRESET
        forget_preset_fields()
        st.rerun()


def forget_preset_fields() -> None:
    """Another preset was picked: its fields start from its saved values, not the last edit."""
    for key in [k for k in st.session_state if str(k).startswith("preset_") and "." in str(k)]:
        del st.session_state[key]
    st.session_state.pop("preset_name", None)


def _section_order(section: str) -> int:
    order = [f.section for f in PRESET_FIELDS]
    return order.index(section)


def field_input(col: st.delta_generator.DeltaGenerator, f: PresetField, body: PresetBody) -> str:
    current = body.get(f.section, {}).get(f.key, "")
    key = f"preset_{f.path}"
    if f.kind == "choice":
        index = f.choices.index(str(current)) if str(current) in f.choices else 0
        picked = col.selectbox(f.label, f.choices, index=index, key=key, help=f.help)
        return str(picked)
    return col.text_input(f.label, value=str(current), key=key, help=f.help)


def launch_panel(appdb: AppDatabase, launcher: Launcher) -> None:
    st.subheader("Launch a session")
    names = appdb.preset_names()
    if not names:
        st.info("Save a preset first.")
        return
    preset = st.selectbox("Preset", names, key="launch_preset")
    go: str | None = None
    if st.button("Launch session", key="launch", type="primary") and preset is not None:
        if testnet_preset(appdb, preset):  # it trades with this dashboard's keys: ask
            st.session_state["launch_confirm"] = preset
        else:
            go = preset
    held = st.session_state.get("launch_confirm")
    confirmed = confirmation(
        "launch_confirm",
        f"Preset {held!r} is a binance-testnet session: it trades on the testnet account "
        "with the API keys in this dashboard's environment. Launch it?",
        "Confirm launch",
    )
    go = confirmed if confirmed is not None else go
    if go is not None:
        preset = go
        try:
            job = capped_launch(launcher, lambda: launcher.launch(go))
        except (LaunchError, StorageError) as exc:
            st.error(str(exc))
        else:
            st.session_state["launched"] = job.trader_id
            st.success(f"Launched {job.trader_id} (pid {job.pid}); config {job.config_path}")
    launched = st.session_state.get("launched")
    if isinstance(launched, str):
        st.button(f"Open {launched}", key="open_launched", on_click=open_session, args=(launched,))


# ---------------------------------------------------------------- main


def main() -> None:
    st.set_page_config(page_title="Paper trading", layout="wide")
    if not admitted():
        return
    args = options(sys.argv[1:])
    db_path = str(args.db.resolve())
    try:
        appdb = app_database(db_path)
    except StorageError as exc:
        st.error(f"Cannot open the database: {exc}")
        return
    launcher = job_launcher(db_path)
    if "page" not in st.session_state:
        page = st.query_params.get("page", PAGES[0])
        st.session_state["page"] = page if page in PAGES else PAGES[0]
        trader = st.query_params.get("trader")
        if trader:
            st.session_state["trader"] = trader
    st.sidebar.title("Paper node")
    page = st.sidebar.radio("Page", PAGES, key="page")
    st.sidebar.toggle(f"Auto-refresh every {REFRESH_S:.0f} s", value=True, key="auto_refresh")
    st.sidebar.caption(f"database {db_path}")
    if os.environ.get(TOKEN_ENV) and st.sidebar.button("Log out", key="logout"):
        st.session_state.clear()
        st.rerun()
    try:
        if page == "Sessions":
            sessions_page(launcher, args.stale_after)
        elif page == "Session":
            session_page(appdb, launcher, args.stale_after)
        elif page == "Trades":
            trades_page(appdb, launcher, args.stale_after)
        elif page == "Readiness":
            readiness_page(appdb, launcher, args.stale_after)
        elif page == "Registry":
            registry_page(appdb, launcher, args.stale_after)
        else:
            launch_panel(appdb, launcher)
            preset_form(appdb, dict(os.environ))
    except StorageError as exc:
        st.error(f"Database error: {exc}")


main()
