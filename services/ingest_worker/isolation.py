"""One child process per file for the part of ingesting that runs foreign native code (staging.py: the
decoders), with a hard time limit.

A decoder that crashes (SIGSEGV), is killed (the kernel's OOM killer sends SIGKILL) or runs past the
file's time limit costs that one attempt of that one file: the worker, its other files in flight, its
catalog connection and its heartbeat live in the parent. The caller counts the attempt (pipeline.py).

Children are forked by multiprocessing's fork server, a single-threaded process that has imported the
decoders once (so a child costs milliseconds, not an interpreter start). A child is its own process
group (ffmpeg, which it may run, is killed with it) and dies with the fork server, which dies with the
worker: nothing decodes on after its worker is gone.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.reduction
import os
import signal
import time
from collections.abc import Callable
from typing import Any

_MP = multiprocessing.get_context("forkserver")
# What every child needs, imported once in the fork server (first uses import more: imagehash's scipy,
# Pillow's format plugins; the first Image.open imports Bmp, Gif, Jpeg, Ppm and Png, about 8 ms a child).
_MP.set_forkserver_preload(["services.ingest_worker.isolation", "services.ingest_worker.staging",
                            "services.ingest_worker.metadata", "scipy.fftpack",
                            *(f"PIL.{name}ImagePlugin" for name in ("Jpeg", "Png", "Gif", "WebP", "Bmp", "Tiff", "Ppm"))])
_PR_SET_PDEATHSIG = 1
_CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT)


class Descriptor:
    """An open file handed to the child: it crosses as a duplicate descriptor that the fork server passes
    on (SCM_RIGHTS), so the child reads the very file the worker opened and checked, never its path again.
    The child may keep it open: it ends with the child."""

    def __init__(self, fd: int):
        self.fd = fd

    def __reduce__(self):
        return _received, (multiprocessing.reduction.DupFd(self.fd),)


def _received(duplicate) -> Descriptor:
    return Descriptor(duplicate.detach())


class ChildDied(Exception):
    """The child process decoding a file crashed, was killed or ran past its time limit; ``str()`` says
    which, for the item's reason."""


def start() -> None:
    """Start the fork server now (a worker does it at start, so its first file does not wait for it)."""
    multiprocessing.forkserver.ensure_running()


def run_isolated(function: Callable[..., Any], args: tuple, time_limit: Callable[[float | None], float]) -> Any:
    """``function(*args, on_duration=...)`` in a child process of its own; returns what it returns and
    raises what it raises (exceptions cross the process boundary by pickle).

    ``time_limit(None)`` is the hard limit in seconds from the start; once the child reports a video's
    duration through ``on_duration``, the limit becomes ``time_limit(duration)``. Raises ChildDied when the
    child dies without an answer, runs out of memory, or is still running at the limit (it is then killed).
    """
    reader, writer = _MP.Pipe(duplex=False)
    child = _MP.Process(target=_child_main, args=(writer, function, args), name="mediasearch-decode", daemon=True)
    started = time.monotonic()
    child.start()
    writer.close()  # the child holds the only writer: end of file on the reader means it is gone
    limit = time_limit(None)
    exitcode: list[int | None] = []
    try:
        while True:
            remaining = started + limit - time.monotonic()
            if remaining <= 0:
                raise ChildDied(f"timed out: decoding was still running at its time limit of {limit:.0f} s "
                                "(it was killed)")
            if not reader.poll(min(remaining, 60.0)):
                continue
            try:
                kind, value = reader.recv()
            except EOFError:
                break
            if kind == "duration":
                limit = time_limit(value)
            elif kind == "done":
                return value
            elif kind == "died":
                raise ChildDied(value)
            else:
                raise value
    finally:
        reader.close()
        exitcode.append(_stop(child))
    raise ChildDied(describe_exit(exitcode[0]))


def describe_exit(exitcode: int | None) -> str:
    """Why a child that gave no answer ended, for people."""
    if exitcode is None or exitcode == 0:
        return "the decoder stopped without an answer"
    if exitcode > 0:
        return f"the decoder exited with status {exitcode}"
    number = -exitcode
    try:
        sig = signal.Signals(number)
    except ValueError:
        return f"the decoder was killed by signal {number}"
    if sig == signal.SIGKILL:
        return "the decoder was killed (SIGKILL: out of memory, or killed from outside)"
    if sig in _CRASH_SIGNALS:
        return f"the decoder crashed ({sig.name})"
    return f"the decoder was killed by {sig.name}"


def _stop(child: multiprocessing.process.BaseProcess) -> int | None:
    """Make sure the child and whatever it started are gone, and reap it; returns its exit code."""
    child.join(timeout=2 if child.exitcode is None else 0)
    if child.exitcode is None:
        try:
            os.killpg(child.pid, signal.SIGKILL)  # its group: it and its ffmpeg, if any
        except (ProcessLookupError, PermissionError):
            pass  # not a group leader yet (it had only just started): the child alone
        child.kill()
        child.join()
    exitcode = child.exitcode
    child.close()
    return exitcode


def _child_main(writer, function: Callable[..., Any], args: tuple) -> None:
    _die_with_parent()
    try:
        os.setpgid(0, 0)
    except OSError:
        pass

    def on_duration(seconds: float) -> None:
        writer.send(("duration", float(seconds)))

    try:
        message = ("done", function(*args, on_duration=on_duration))
    except MemoryError as exc:
        message = ("died", f"decoding ran out of memory (MemoryError: {exc})"[:300])
    except Exception as exc:  # noqa: BLE001 (handed to the parent, which decides)
        message = ("raised", exc)
    except BaseException as exc:  # noqa: BLE001 (SystemExit and the like must not reach the worker's thread)
        message = ("died", f"the decoder stopped ({type(exc).__name__}: {exc})"[:300])
    try:
        writer.send(message)
    except Exception:  # noqa: BLE001 (an exception that does not pickle: its text does)
        error = message[1]
        writer.send(("raised", RuntimeError(f"{type(error).__name__}: {error}"[:1000])))
    writer.close()


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the fork server) dies, as it does with its worker."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the line above
        os._exit(1)
