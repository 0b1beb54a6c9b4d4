"""Poison for the fault tests: a decoder plugin (MEDIASEARCH_DECODER_PLUGINS=tests.poison) for a file type
whose every file kills the process decoding it with SIGKILL, as a decoder crash or the kernel's OOM killer
would; and functions that die in other ways, for running in isolation.run_isolated. No current release
of our decoders is known to crash on a real input, so the poison is this plugin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from services.ingest_worker.plugins import DecoderPlugin
from services.ingest_worker.sniff import BadInput, MediaType

MAGIC = b"MEDIASEARCH-POISON\n"
POISON = MediaType("image", "image/x-mediasearch-poison", ".poison")


def _kill_the_decoder(path: Path, max_pixels: int, max_side: int) -> Image.Image:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


DECODERS = [DecoderPlugin(POISON, MAGIC, _kill_the_decoder)]


def poison_file(number: int = 0) -> bytes:
    return MAGIC + f"poison file {number}\n".encode()


# -- for isolation.run_isolated: each takes on_duration, as staging.stage does ---------------------------
def answer(value, *, on_duration):
    return value


def refuse(reason: str, *, on_duration):
    raise BadInput(reason)


def die_by(signal_number: int, *, on_duration):
    os.kill(os.getpid(), signal_number)
    time.sleep(60)


def exhaust_memory(*, on_duration):
    raise MemoryError("cannot allocate 8 GiB")


def exit_quietly(*, on_duration):
    sys.exit(0)


def sleep_with_a_child(pid_file: str, declared_duration: float | None, *, on_duration):
    """Runs a grandchild (as ffmpeg would be) and sleeps; writes both pids to ``pid_file``."""
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    Path(pid_file).write_text(f"{os.getpid()} {grandchild.pid}")
    if declared_duration is not None:
        on_duration(declared_duration)
    time.sleep(60)


def own_pid(*, on_duration):
    return os.getpid()


def open_descriptors(descriptor, *, on_duration):
    """How many descriptors the decoder holds while it has ``descriptor`` (a file handed to it)."""
    return len(os.listdir("/proc/self/fd"))


def meet_then_pid(directory: str, count: int, *, on_duration):
    """Says it is here, and waits (30 s at most) until ``count`` decoders are: only decoders that run at
    the same time can all meet."""
    Path(directory, str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(os.listdir(directory)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()
