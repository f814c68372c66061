"""What an endpoint is given to run with, and how it is written for people."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Resources(BaseModel):
    model_config = {"frozen": True}

    cpu: float = Field(gt=0)
    memory_mb: int = Field(gt=0)
    replicas: int = Field(default=1, gt=0)
    gpus: int = Field(default=0, ge=0)

    def describe(self, *, replicas: bool = True) -> str:
        parts = [f"{_num(self.cpu)} cpu", format_memory(self.memory_mb)]
        if self.gpus:
            parts.append(f"{self.gpus} gpu")
        if replicas:
            parts.append(f"{self.replicas} replica" + ("s" if self.replicas != 1 else ""))
        return ", ".join(parts)


def format_memory(memory_mb: int) -> str:
    if memory_mb % 1024 == 0:
        return f"{memory_mb // 1024} GB"
    return f"{memory_mb} MB"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
