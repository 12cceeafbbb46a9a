"""Receiving provider webhooks over HTTP: the endpoint the gateway mounts and `runq webhooks`.

`receiver` builds the core's `WebhookReceiver` (runq.runs.webhooks) for a deployment:
its secret from `OPENAI_WEBHOOK_SECRET`, its Redis, and a wake that sends the job's poll
step through Celery. `endpoint` is the one request handler both servers use; `app` and
`server` are the small standalone server for deployments without the gateway.
"""

# Where deliveries are posted, on the gateway and on `runq webhooks` alike. Here, not in
# `endpoint`, so `runq up` and the gateway's guard name it without importing the web stack.
PATH = "/v1/webhooks/openai"
