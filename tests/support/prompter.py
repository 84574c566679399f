"""A Prompter (provision.ui.questions) that answers by question name, not by call order: the wizard's test double.

A plain answer is used once. `Turns([...])` gives successive answers to one question: a re-ask after a mismatch,
or answers that the question's validator refuses (as questionary keeps the prompt open, the refusal messages are
recorded in `refused`). `None` behaves as Ctrl-C, `DEFAULT` as pressing Enter. A question with no answer left
fails the test; `unused()` lists answers never consumed. `seen[name]` keeps what the question showed: message,
default and options (its choices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provision.errors import Aborted
from provision.ui.questions import Kind, Prompt
from provision.ui.wizard import ABORTED_MESSAGE

DEFAULT = object()  # take the question's default (the checked options, for a checkbox)


class Turns(list):
    """Successive answers to the same question, e.g. `Turns(["secret12", "secret12"])`."""


@dataclass
class ScriptedPrompter:
    answers: dict[str, Any]
    asked: list[str] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=dict)  # question -> validator messages shown
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)  # question -> message, options, default

    def __call__(self, prompt: Prompt) -> Any:
        self.seen[prompt.name] = {"message": prompt.message, "default": prompt.default,
                                  "options": list(prompt.choices)}
        if prompt.kind == Kind.CONFIRM:
            answer = self._next(prompt.name)
            return prompt.default if answer is DEFAULT else bool(answer)
        if prompt.kind == Kind.SELECT:
            answer = self._next(prompt.name)
            answer = prompt.default if answer is DEFAULT else answer
            if answer not in [choice.value for choice in prompt.choices]:
                raise AssertionError(f"{prompt.name!r}: {answer!r} is not one of the options")
            return answer
        while True:  # text, password, checkbox: validated, re-asked while refused
            answer = self._next(prompt.name)
            if answer is DEFAULT:
                if prompt.kind == Kind.CHECKBOX:
                    answer = [choice.value for choice in prompt.choices if choice.checked]
                else:
                    answer = prompt.default or ""
            if prompt.kind == Kind.CHECKBOX:
                unknown = set(answer) - {choice.value for choice in prompt.choices}
                if unknown:
                    raise AssertionError(f"{prompt.name!r}: {sorted(unknown)} are not options")
                answer = list(answer)
            verdict = True if prompt.validate is None else prompt.validate(answer)
            if verdict is True:
                return answer
            self.refused.setdefault(prompt.name, []).append(str(verdict))

    def _next(self, name: str) -> Any:
        turn = self.asked.count(name)
        self.asked.append(name)
        if name not in self.answers:
            raise AssertionError(f"unexpected question {name!r}")
        answer = self.answers[name]
        if isinstance(answer, Turns):
            if turn >= len(answer):
                raise AssertionError(f"question {name!r} asked more often than scripted ({len(answer)})")
            answer = answer[turn]
        elif turn > 0:
            raise AssertionError(f"question {name!r} asked again; script Turns([...]) if that is expected")
        if answer is None:
            raise Aborted(ABORTED_MESSAGE)
        return answer

    def unused(self) -> list[str]:
        """Scripted answers never consumed."""
        left = []
        for name, answer in self.answers.items():
            wanted = len(answer) if isinstance(answer, Turns) else 1
            if self.asked.count(name) < wanted:
                left.append(name)
        return left
