"""Playing the runner for `Retrier.flow` in tests: sends answered from a script, sleeps moving
an injected clock, token calls performed synchronously. Plain values in, plain values out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import forbear
from forbear import Call, ErrorKind, Outcome
from forbear.flow import Release, Replayable, Send, Sleep

__all__ = ["Answer", "Clock", "Played", "play"]

Answer = int | tuple[int, Mapping[str, str]] | ErrorKind | Exception


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Played:
    """What one flow did: its effects in order, and what it handed back."""

    result: Any = None
    effects: list[Any] = field(default_factory=list)

    @property
    def sends(self) -> list[Mapping[str, str] | None]:
        return [effect.headers for effect in self.effects if isinstance(effect, Send)]

    @property
    def sleeps(self) -> list[float]:
        return [effect.seconds for effect in self.effects if isinstance(effect, Sleep)]

    @property
    def released(self) -> list[Any]:
        return [effect.response for effect in self.effects if isinstance(effect, Release)]


def play(
    flow: forbear.Flow,
    answers: Sequence[Answer],
    *,
    clock: Clock | None = None,
    replayable: bool = True,
) -> Played:
    """Answer the flow's effects: sends from ``answers`` (a response is ``("response", n)``)."""
    played = Played()
    script = iter(answers)
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            played.result = stop.value
            return played
        played.effects.append(effect)
        value, error = None, None
        if isinstance(effect, Send):
            answer = next(script)
            number = sum(isinstance(e, Send) for e in played.effects)
            if isinstance(answer, ErrorKind):
                value = (None, ConnectionError(answer.value), Outcome.error(answer))
            elif isinstance(answer, Exception):
                value = (None, answer, None)
            else:
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                value = (("response", number), None, Outcome.response(status, headers))
        elif isinstance(effect, Sleep) and clock is not None:
            clock.now += effect.seconds
        elif isinstance(effect, Replayable):
            value = replayable
        elif isinstance(effect, Call):
            try:
                value = effect.sync(*effect.args)
            except Exception as exc:
                error = exc


class Plain:
    """A sync adapter over plain values for `forbear.Retrier.run_sync`: every send answers
    200 with the response ``"response"``."""

    def send(self, request: object, headers: Any) -> str:
        return "response"

    def outcome(self, response: str) -> Outcome:
        return Outcome.response(200, {})

    def failure(self, error: Exception) -> None:
        return None

    def replayable(self, request: object) -> bool:
        return True

    def release(self, response: str) -> None:
        pass
