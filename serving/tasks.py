"""Celery tasks of serving: ids only, thin (each body calls one service)."""

from serving.services import DEPLOY_TASK, INT8_TASK, endpoint_deploy, int8_check_run
from serving.usage import FLUSH_TASK, usage_flush
from workers.taskbase import tuneforge_task


@tuneforge_task(DEPLOY_TASK, queue="default", time_limit=900, soft_time_limit=840)
def deploy_endpoint(endpoint_id: str, version_id: str) -> None:
    endpoint_deploy(endpoint_id=endpoint_id, version_id=version_id)


@tuneforge_task(INT8_TASK, queue="default", time_limit=1800, soft_time_limit=1740)
def measure_int8(check_id: str) -> None:
    int8_check_run(check_id=check_id)


@tuneforge_task(FLUSH_TASK, queue="default", time_limit=120, soft_time_limit=100)
def flush_usage() -> None:
    """Metered calls of closed minutes, Redis -> PostgreSQL aggregates (replay-safe: a redelivered
    or overlapping run counts nothing twice)."""
    usage_flush()
