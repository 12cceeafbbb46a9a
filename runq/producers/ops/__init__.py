"""Operations: run a deployment and watch it.

- `up`: `runq up`, the embedded stack (Redis, the sandbox, workers) in the foreground;
- `demo`: `runq demo`, the embedded stack answering the sample questions, then stopped;
- `flower`: `runq flower`, Flower on runq's Redis, never without authentication;
- `metrics_server`: `runq metrics`, the Prometheus endpoint (also mounted by the gateway);
- `commands`: the `runq` subcommands above.

Nothing is imported here: the `runq` command registers these subcommands on every
start, and only the one that runs needs its module.
"""
