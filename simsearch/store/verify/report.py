"""What ``verify`` reports: one :class:`Check` per verified property, gathered in a :class:`VerifyReport`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Check:
    """One verified property; ``repairable`` problems are fixed by ``verify --repair``."""

    name: str
    ok: bool
    detail: str
    repairable: bool = False


@dataclass
class VerifyReport:
    """All checks of one index; ``repaired`` lists the problems a repair fixed."""

    path: str
    checks: list[Check]
    repaired: list[Check] = field(default_factory=list)
    generation: int | None = None
    count: int | None = None

    @property
    def problems(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        name = Path(self.path).name
        fixed = (
            f"repaired {len(self.repaired)} problem(s), generation {self.generation}; "
            if self.repaired
            else ""
        )
        if self.ok:
            return (
                f"Index {name!r}: {fixed}ok ({self.count} documents, generation "
                f"{self.generation}, {len(self.checks)} checks passed)"
            )
        hint = (
            "run `simsearch verify --repair`"
            if all(p.repairable for p in self.problems)
            else "rebuild the index from its sources"
        )
        return f"Index {name!r}: {fixed}{len(self.problems)} problem(s) remain; {hint}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "generation": self.generation,
            "count": self.count,
            "checks": [asdict(c) for c in self.checks],
            "repaired": [asdict(c) for c in self.repaired],
        }
