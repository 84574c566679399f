"""`zvm-provision batch`: one seeded image per employee, from a manifest (run.py says how a run goes)."""

from provision.commands.batch.model import BatchOptions, BatchResult, UserStatus
from provision.commands.batch.run import BatchInterrupted, plan_chunks, run_batch

__all__ = ["BatchInterrupted", "BatchOptions", "BatchResult", "UserStatus", "plan_chunks", "run_batch"]
