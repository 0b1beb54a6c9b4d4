"""A file's decoding in a decoder process (services/ingest_worker/isolation.py): answers and refusals
come back; a crash, a kill, running out of memory or running past the time limit become ChildDied with
the reason, and leave nothing running behind (not even what the child started); decoders are reused file
after file, replaced when one dies, and keep no file open after it is done."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.ingest_worker.isolation import ChildDied, Descriptor, run_isolated
from services.ingest_worker.sniff import BadInput
from tests import poison
from tests.conftest import wait_for


def fixed(seconds: float):
    return lambda duration: seconds


def gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for whoever adopted it to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_an_answer_and_a_refusal_come_back_from_the_child():
    assert run_isolated(poison.answer, ({"frames": [1, 2]},), fixed(30)) == {"frames": [1, 2]}
    with pytest.raises(BadInput, match="truncated or corrupt image"):
        run_isolated(poison.refuse, ("truncated or corrupt image",), fixed(30))


@pytest.mark.parametrize("sig, reason", [
    (signal.SIGKILL, "the decoder was killed (SIGKILL: out of memory, or killed from outside)"),
    (signal.SIGSEGV, "the decoder crashed (SIGSEGV)"),
])
def test_a_child_that_crashes_or_is_killed_is_a_death_with_its_reason(sig, reason):
    with pytest.raises(ChildDied) as died:
        run_isolated(poison.die_by, (sig,), fixed(30))
    assert str(died.value) == reason


def test_running_out_of_memory_or_exiting_is_a_death():
    with pytest.raises(ChildDied, match="ran out of memory"):
        run_isolated(poison.exhaust_memory, (), fixed(30))
    with pytest.raises(ChildDied, match=r"the decoder stopped \(SystemExit: 0\)"):
        run_isolated(poison.exit_quietly, (), fixed(30))


def test_a_child_past_its_time_limit_is_killed_with_what_it_started(tmp_path):
    pid_file = tmp_path / "pids"
    with pytest.raises(ChildDied, match=r"timed out: decoding was still running at its time limit of 2 s"):
        run_isolated(poison.sleep_with_a_child, (str(pid_file), None), fixed(1.5))
    child, grandchild = map(int, pid_file.read_text().split())
    assert gone(child)
    wait_for(lambda: gone(grandchild), 10, message="the child's own child (an ffmpeg, say) to be killed too")


def test_a_video_duration_reported_by_the_child_extends_its_limit(tmp_path):
    def limit(duration: float | None) -> float:
        return 1.0 if duration is None else 1.0 + duration

    # the message names the limit in force when the child was killed: 2 s, not the 1 s it started with
    with pytest.raises(ChildDied, match="time limit of 2 s"):
        run_isolated(poison.sleep_with_a_child, (str(tmp_path / "pids"), 1.0), limit)


def test_a_decoder_takes_file_after_file_and_a_dead_one_is_replaced(tmp_path):
    first = run_isolated(poison.own_pid, (), fixed(30))
    assert run_isolated(poison.own_pid, (), fixed(30)) == first  # no process start per file
    with pytest.raises(BadInput):
        run_isolated(poison.refuse, ("not a picture",), fixed(30))
    assert run_isolated(poison.own_pid, (), fixed(30)) == first  # a refusal is an answer: it lives on
    with pytest.raises(ChildDied):
        run_isolated(poison.die_by, (signal.SIGKILL,), fixed(30))
    replacement = run_isolated(poison.own_pid, (), fixed(30))
    assert replacement != first and gone(first)


def test_a_file_handed_to_a_decoder_is_closed_when_it_is_done(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"bytes")
    counts = []
    for _ in range(5):
        with open(path, "rb") as handle:
            counts.append(run_isolated(poison.open_descriptors, (Descriptor(handle.fileno()),), fixed(30)))
    assert len(set(counts)) == 1, counts  # one more file does not leave one more descriptor behind


def test_files_decoded_at_once_each_get_a_decoder_of_their_own(tmp_path):
    with ThreadPoolExecutor(3) as pool:
        pids = list(pool.map(lambda _: run_isolated(poison.meet_then_pid, (str(tmp_path), 3), fixed(60)), range(3)))
    assert len(set(pids)) == 3
