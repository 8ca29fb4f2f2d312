"""A multiprocessing ``spawn`` child started with an environment of our choosing.

multiprocessing starts a spawned child with its parent's whole environment and has no
parameter to change that; the node child runs strategy code, which must not find the
Telegram token (nor, outside ``binance-testnet``, the Binance keys) there - neither in
``os.environ`` nor in ``/proc/self/environ``, which keeps what the process was started
with whatever it deletes later. So ``EnvProcess`` is the spawn context's process with
one change: the interpreter is started by ``subprocess.Popen`` with ``env=``, passing
the same descriptors multiprocessing would (``pass_fds``), and the exit is read from
that ``Popen`` (it reaps the child; multiprocessing's own ``waitpid`` would race it).
Everything else - the pickled process object over the pipe, the sentinel, ``join``,
``kill``, ``exitcode`` - is multiprocessing's.

It lives under ``node``, beside the spawn target, not under ``actors``: the child
unpickles the process object and so imports this module, and anything under
``actors`` imports the whole supervisor first (0.6 s of every node start).
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Mapping
from multiprocessing import popen_spawn_posix, reduction, resource_tracker, spawn, util
from multiprocessing.context import SpawnProcess, set_spawning_popen

__all__ = ["EnvProcess"]


class _EnvPopen(popen_spawn_posix.Popen):
    """``popen_spawn_posix.Popen`` whose interpreter starts with ``process_obj.child_env``.

    ``_launch`` is the standard library's (CPython 3.12) but for the one call that starts
    the interpreter."""

    _child: subprocess.Popen[bytes] | None = None
    _fds: list[int]

    def _launch(self, process_obj: EnvProcess) -> None:
        tracker_fd = resource_tracker.getfd()
        if tracker_fd is not None:
            self._fds.append(tracker_fd)
        prep_data = spawn.get_preparation_data(process_obj.name)
        fp = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, fp)
            reduction.dump(process_obj, fp)
        finally:
            set_spawning_popen(None)
        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = os.pipe()
            child_r, parent_w = os.pipe()
            cmd = spawn.get_command_line(tracker_fd=tracker_fd, pipe_handle=child_r)
            self._fds.extend([child_r, child_w])
            self._child = subprocess.Popen(
                cmd,
                executable=spawn.get_executable(),
                pass_fds=sorted(self._fds),
                env=dict(process_obj.child_env),
            )
            self.pid = self._child.pid
            self.sentinel = parent_r
            with open(parent_w, "wb", closefd=False) as f:
                f.write(fp.getbuffer())
        finally:
            util.Finalize(self, _close, [fd for fd in (parent_r, parent_w) if fd is not None])
            for fd in (child_r, child_w):
                if fd is not None:
                    os.close(fd)

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        if self.returncode is None and self._child is not None:
            self.returncode = self._child.poll() if flag & os.WNOHANG else self._child.wait()
        return self.returncode


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


class EnvProcess(SpawnProcess):
    """A spawned process whose interpreter starts with ``env``, not the parent's."""

    def __init__(self, env: Mapping[str, str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.child_env = dict(env)

    @staticmethod
    def _Popen(process_obj: EnvProcess) -> _EnvPopen:  # type: ignore[override]
        return _EnvPopen(process_obj)

    def __getstate__(self) -> dict[str, object]:
        # The child has its environment already; the pickle sent over the pipe carries
        # no copy of it.
        state = dict(self.__dict__)
        state["child_env"] = {}
        return state
