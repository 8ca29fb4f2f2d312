"""Which secret each process is given: the environment a child process starts with.

Secrets come only from the environment (never a file, the database or a log). A child
inherits its parent's environment unless told otherwise, and third-party strategy code
runs in three children - the config check that imports it, the node that trades it, the
parity backtest that replays it - so each child is started with ``child_environment``:
the parent's environment without any secret but the ones named for that child. A secret
is a name this module lists (``SECRET_ENV``) or one that looks like one (``TOKEN``,
``SECRET``, ``PASSWORD``, ``API_KEY``...), so an operator's unrelated credentials in the
same shell are kept from strategy code too.

Who gets what:
- the strategy import check and the parity backtest: no secret;
- the node child: the Binance testnet key and secret in ``binance-testnet`` mode only
  (NautilusTrader's Binance client reads them from its environment), never the Telegram
  token;
- a session the dashboard launches (a whole service): the Telegram token, chat and user
  ids (its alerter's) and the testnet keys if its mode is ``binance-testnet``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

TELEGRAM_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"  # noqa: S105 (the name of the variable)
TELEGRAM_CHATS_ENV = "TELEGRAM_CHAT_IDS"
TELEGRAM_USERS_ENV = "TELEGRAM_USER_IDS"
TESTNET_KEY_ENV = ("BINANCE_FUTURES_TESTNET_API_KEY", "BINANCE_FUTURES_TESTNET_API_SECRET")
SECRET_ENV = (
    TELEGRAM_TOKEN_ENV,
    "BINANCE_API_KEY",
    "BINANCE_API_SECRET",
    *TESTNET_KEY_ENV,
    "BINANCE_TESTNET_API_KEY",
    "BINANCE_TESTNET_API_SECRET",
)
# Names that hold credentials by convention (AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN,
# a dashboard password...): kept from children as the listed ones are.
SECRET_LIKE = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE)
# Not secrets (not redacted from logs), and a child must not see them either: who may
# command the service on Telegram, and systemd's notify socket, which belongs to the
# main process (``NotifyAccess=main``).
PARENT_ONLY_ENV = (
    TELEGRAM_CHATS_ENV,
    TELEGRAM_USERS_ENV,
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
)


def is_secret(name: str) -> bool:
    return name in SECRET_ENV or SECRET_LIKE.search(name) is not None


def child_environment(env: Mapping[str, str], keep: Iterable[str] = ()) -> dict[str, str]:
    """``env`` without any secret (nor ``PARENT_ONLY_ENV``) but the names in ``keep``."""
    kept = set(keep)
    return {
        name: value
        for name, value in env.items()
        if name in kept or (not is_secret(name) and name not in PARENT_ONLY_ENV)
    }


def node_secrets(mode: str) -> tuple[str, ...]:
    """The secrets the node child of ``mode`` is given: the testnet keys in that mode."""
    return TESTNET_KEY_ENV if mode == "binance-testnet" else ()


def session_secrets(mode: str) -> tuple[str, ...]:
    """The secrets a launched session (a whole service) of ``mode`` is given."""
    return (TELEGRAM_TOKEN_ENV, TELEGRAM_CHATS_ENV, TELEGRAM_USERS_ENV, *node_secrets(mode))
