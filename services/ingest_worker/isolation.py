"""Decoding in child processes, one file at a time each, for the part of ingesting that runs foreign
native code (staging.py: the decoders), with a hard time limit.

A decoder that crashes (SIGSEGV), is killed (the kernel's OOM killer sends SIGKILL) or runs past the
file's time limit costs that one attempt of that one file: the worker, its other files in flight, its
catalog connection and its heartbeat live in the parent. The caller counts the attempt (pipeline.py).

The children are a pool of long-lived decoder processes (a prefork pool): each takes one file, answers,
and waits for the next, so a file does not pay for a process's start and exit (about 10 ms of CPU a
photo). A decoder that died, answered that it is stopping, or was killed at a time limit is replaced by a
new one; each is retired after ``MAX_FILES_PER_DECODER`` files or once it has grown past
``RETIRE_RSS_BYTES``, so leaks in native code stay bounded. Decoders are forked by multiprocessing's fork
server, a single-threaded process that has imported the decoders once. A decoder is its own process
group (ffmpeg, which it may run, is killed with it) and dies with the fork server, which dies with the
worker: nothing decodes on after its worker is gone.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.reduction
import os
import resource
import signal
import threading
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
MAX_FILES_PER_DECODER = 500
RETIRE_RSS_BYTES = 1024**3  # a decoder that grew past this (a huge image or video) is replaced after its file
MAX_IDLE_DECODERS = 2 * (os.cpu_count() or 1)
_CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT)


class Descriptor:
    """An open file handed to the child: it crosses as a duplicate descriptor that the fork server passes
    on (SCM_RIGHTS), so the child reads the very file the worker opened and checked, never its path again.
    The decoder closes it when the file is done."""

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
    """``function(*args, on_duration=...)`` in a decoder process; returns what it returns and raises what it
    raises (exceptions cross the process boundary by pickle).

    ``time_limit(None)`` is the hard limit in seconds from the start; once the child reports a video's
    duration through ``on_duration``, the limit becomes ``time_limit(duration)``. Raises ChildDied when the
    decoder dies without an answer, runs out of memory, or is still running at the limit (it is then killed).
    """
    decoder = _POOL.take()
    reusable = False
    started = time.monotonic()
    limit = time_limit(None)
    try:
        decoder.connection.send((function, args))
        while True:
            remaining = started + limit - time.monotonic()
            if remaining <= 0:
                raise ChildDied(f"timed out: decoding was still running at its time limit of {limit:.0f} s "
                                "(it was killed)")
            if not decoder.connection.poll(min(remaining, 60.0)):
                continue
            try:
                kind, value, stopping = decoder.connection.recv()
            except EOFError:
                break
            if kind == "duration":
                limit = time_limit(value)
                continue
            reusable = not stopping
            if kind == "done":
                return value
            if kind == "died":
                raise ChildDied(value)
            raise value
    except (BrokenPipeError, ConnectionResetError):
        pass  # the decoder was gone before it heard of the file
    finally:
        if reusable:
            _POOL.give_back(decoder)
        else:
            decoder.exitcode = _stop(decoder.process)
            decoder.connection.close()
    raise ChildDied(describe_exit(decoder.exitcode))


class _Decoder:
    """One long-lived decoder process and the parent's end of its duplex pipe."""

    def __init__(self) -> None:
        self.connection, child_end = _MP.Pipe(duplex=True)
        self.process = _MP.Process(target=_decoder_main, args=(child_end,), name="mediasearch-decoder", daemon=True)
        self.process.start()
        child_end.close()  # the child holds the only other end: end of file on ours means it is gone
        self.exitcode: int | None = None


class _DecoderPool:
    """Idle decoders, shared by the worker's threads; a thread takes one for a file and gives it back."""

    def __init__(self) -> None:
        self._idle: list[_Decoder] = []
        self._lock = threading.Lock()

    def take(self) -> _Decoder:
        with self._lock:
            while self._idle:
                decoder = self._idle.pop()
                if decoder.process.is_alive():
                    return decoder
                _retire(decoder)
        return _Decoder()

    def give_back(self, decoder: _Decoder) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_DECODERS:
                self._idle.append(decoder)
                return
        _retire(decoder)


def _retire(decoder: _Decoder) -> None:
    try:
        decoder.connection.send(None)  # "no more files": it exits
    except OSError:
        pass
    decoder.connection.close()
    _stop(decoder.process)


_POOL = _DecoderPool()


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


def _decoder_main(connection) -> None:
    _die_with_parent()
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    for files in range(1, MAX_FILES_PER_DECODER + 1):
        try:
            job = connection.recv()
        except EOFError:
            return
        if job is None:
            return
        function, args = job
        try:
            kind, value = _run(connection, function, args)
        finally:
            for arg in args:  # the file's descriptor came for this file only
                if isinstance(arg, Descriptor):
                    os.close(arg.fd)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 > RETIRE_RSS_BYTES
        stopping = kind == "died" or grown or files == MAX_FILES_PER_DECODER
        try:
            connection.send((kind, value, stopping))
        except Exception:  # noqa: BLE001 (an exception that does not pickle: its text does)
            connection.send(("raised", RuntimeError(f"{type(value).__name__}: {value}"[:1000]), stopping))
        if stopping:
            return


def _run(connection, function: Callable[..., Any], args: tuple) -> tuple[str, Any]:
    def on_duration(seconds: float) -> None:
        connection.send(("duration", float(seconds), False))

    try:
        return "done", function(*args, on_duration=on_duration)
    except MemoryError as exc:
        return "died", f"decoding ran out of memory (MemoryError: {exc})"[:300]
    except Exception as exc:  # noqa: BLE001 (handed to the parent, which decides)
        return "raised", exc
    except BaseException as exc:  # noqa: BLE001 (SystemExit and the like must not reach the worker's thread)
        return "died", f"the decoder stopped ({type(exc).__name__}: {exc})"[:300]


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the fork server) dies, as it does with its worker."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the line above
        os._exit(1)
