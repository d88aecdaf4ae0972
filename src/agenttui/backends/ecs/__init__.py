"""The ECS backend: each test attempt is one Fargate task running the generic runner image.

- The agent travels through S3 (`bundles`): its code, requirements, the harness and the test's
  environment are zipped and put in the bucket; the task gets only a presigned URL in its
  overrides (ECS caps overrides at 8 KiB; checked before RunTask is called, `task`).
- One shared poller (`poller`) describes every watched task in batches of 100 (DescribeTasks)
  each `ecs_poll_s`; wait(), logs(), stop() and inspect() read what it last saw.
- Logs come from CloudWatch Logs (`logs`: GetLogEvents on `prefix/container/task-id`) with the
  forward token as the resumable cursor. A missing stream means "not started yet"; after STOPPED
  the stream is drained until its token stops moving. Calls are spaced by a shared rate limiter.
- Outcomes come from stopCode / the container's exitCode and reason (`description`): OOM, failed
  to start (InfraError: retried), a task missing from DescribeTasks (InfraError), our own StopTask.
- `insights` reads memory from Container Insights; `maintenance` stops abandoned tasks; `aws`
  holds the aioboto3 clients shared with `packages` (packages in S3) and `doctor` (the AWS checks).

See docs/aws.md for the AWS set-up and templates/ecs/ for the runner image.
"""

from agenttui.backends.ecs.backend import EcsBackend

__all__ = ["EcsBackend"]
