"""The orchestration core: no Celery here, only what a job needs decided and stored."""
