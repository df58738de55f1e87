"""TickBatcher: the calls of one event-loop turn go out as one call, each answered in turn."""

from __future__ import annotations

import asyncio

import pytest

from emporium_kit.batching import TickBatcher


class Recorder:
    def __init__(self, *, fail: Exception | None = None, gate: asyncio.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self._fail = fail
        self._gate = gate

    async def send(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if self._gate is not None:
            await self._gate.wait()
        if self._fail is not None:
            raise self._fail
        return [item * 10 for item in items]


async def test_calls_of_one_turn_are_one_send_and_each_gets_its_own_answer() -> None:
    recorder = Recorder()
    batcher = TickBatcher(recorder.send)

    answers = await asyncio.gather(*(batcher(i) for i in range(20)))

    assert answers == [i * 10 for i in range(20)]
    assert recorder.batches == [list(range(20))]


async def test_a_call_alone_goes_out_at_once_and_later_turns_make_new_batches() -> None:
    recorder = Recorder()
    batcher = TickBatcher(recorder.send)

    assert await batcher(1) == 10
    assert await batcher(2) == 20

    assert recorder.batches == [[1], [2]]


async def test_a_full_batch_is_sent_and_the_rest_of_the_turn_starts_another() -> None:
    recorder = Recorder()
    batcher = TickBatcher(recorder.send, max_batch=8)

    answers = await asyncio.gather(*(batcher(i) for i in range(20)))

    assert answers == [i * 10 for i in range(20)]
    assert recorder.batches == [list(range(8)), list(range(8, 16)), list(range(16, 20))]


async def test_a_failed_send_fails_every_call_of_its_batch_and_only_those() -> None:
    boom = ConnectionError("redis went away")
    failing = TickBatcher(Recorder(fail=boom).send)

    outcomes = await asyncio.gather(*(failing(i) for i in range(3)), return_exceptions=True)

    assert outcomes == [boom, boom, boom]
    healthy = Recorder()
    assert await TickBatcher(healthy.send)(4) == 40


async def test_a_cancelled_caller_leaves_the_others_of_its_batch_answered() -> None:
    gate = asyncio.Event()
    recorder = Recorder(gate=gate)
    batcher = TickBatcher(recorder.send)
    calls = [asyncio.create_task(batcher(i)) for i in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the batch is in send, waiting at the gate

    calls[1].cancel()
    gate.set()

    assert await calls[0] == 0
    assert await calls[2] == 20
    with pytest.raises(asyncio.CancelledError):
        await calls[1]
    assert recorder.batches == [[0, 1, 2]]


async def test_a_send_answering_the_wrong_number_of_results_fails_its_calls() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = TickBatcher(short)

    outcomes = await asyncio.gather(batcher(1), batcher(2), return_exceptions=True)

    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)


def test_a_batch_left_open_by_an_ended_loop_does_not_hold_the_next_loops_calls() -> None:
    recorder = Recorder()
    batcher = TickBatcher(recorder.send)
    first = asyncio.new_event_loop()
    abandoned = [first.create_task(batcher(1))]
    first.call_soon(first.stop)  # stops after the call opened its batch, before the flush
    first.run_forever()
    abandoned += asyncio.all_tasks(first) - set(abandoned)
    for task in abandoned:
        task.cancel()  # the flush is cancelled before it ever ran
    first.run_until_complete(asyncio.gather(*abandoned, return_exceptions=True))
    first.close()

    assert asyncio.run(asyncio.wait_for(batcher(2), timeout=1)) == 20
    assert recorder.batches == [[2]]
