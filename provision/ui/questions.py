"""Questions as data, as copier has them: each question says its name, kind, message, default, choices, how
an answer is checked and when it is asked; one call (`ask`) asks a list of them through a Prompter, the one
method that reaches the terminal (ui.wizard's QuestionaryPrompter; tests answer by name).

What a question says may depend on what is known when it is asked (the answers so far, the image's state):
such a field is a function of the asking context, called just before the question is put.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

C = TypeVar("C", bound="Asking")


class Kind(StrEnum):
    TEXT = "text"
    PASSWORD = "password"  # text that is not shown
    CONFIRM = "confirm"  # yes or no
    SELECT = "select"  # one of the choices
    CHECKBOX = "checkbox"  # any of the choices (a list of values)


@dataclass(frozen=True)
class Choice:
    """One entry of a select or checkbox question: `value` is what the answer holds."""

    value: str
    title: str
    checked: bool = False


Validator = Callable[[Any], "bool | str"]  # True, or the message shown under the prompt (which stays open)


@dataclass(frozen=True)
class Prompt:
    """One question as it is put: every field decided."""

    name: str
    kind: Kind
    message: str
    default: Any = None
    choices: tuple[Choice, ...] = ()
    validate: Validator | None = None


class Prompter(Protocol):
    def __call__(self, prompt: Prompt) -> Any:
        """The answer (a str, a bool for CONFIRM, a list of values for CHECKBOX); raises errors.Aborted on
        Ctrl-C."""
        ...


class Asking(Protocol):
    """What the questions' functions read: the answers so far (and whatever else the asker keeps)."""

    answers: dict[str, Any]


def always(_: Any) -> bool:
    """Every time: a question asked whatever came before, an answer with nothing to check."""
    return True


@dataclass(frozen=True)
class Question(Generic[C]):
    """A question of the list. message, default and choices may be functions of the context; `validate`
    takes the answer and the context; `when` says whether it is asked at all (else it keeps no answer).

    `again` names an earlier question whose answer this one must repeat (a password typed twice): when they
    differ, `mismatch` is said and both are asked again."""

    name: str
    kind: Kind
    message: str | Callable[[C], str]
    part: str  # which step of the asker asks it
    default: Any = None
    choices: Callable[[C], Sequence[Choice]] | None = None
    validate: Callable[[Any, C], bool | str] | None = None
    when: Callable[[C], bool] = always
    again: str | None = None
    mismatch: str = ""

    def prompt(self, context: C) -> Prompt:
        check = self.validate
        return Prompt(
            name=self.name,
            kind=self.kind,
            message=self.message(context) if callable(self.message) else self.message,
            default=self.default(context) if callable(self.default) else self.default,
            choices=tuple(self.choices(context)) if self.choices is not None else (),
            validate=None if check is None else (lambda answer: check(answer, context)),
        )


def ask(
    questions: Sequence[Question[C]], context: C, prompter: Prompter, say: Callable[[str], None]
) -> dict[str, Any]:
    """Ask each question whose `when` holds, in order, through `prompter`; every answer goes into
    `context.answers` (read by the questions after it). Returns the answers given here."""
    given: dict[str, Any] = {}
    index = 0
    while index < len(questions):
        question = questions[index]
        if not question.when(context):
            index += 1
            continue
        answer = prompter(question.prompt(context))
        context.answers[question.name] = given[question.name] = answer
        if question.again is not None and answer != context.answers.get(question.again):
            say(question.mismatch)
            index = next(i for i, q in enumerate(questions) if q.name == question.again)
            continue
        index += 1
    return given
