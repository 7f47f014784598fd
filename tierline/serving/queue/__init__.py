"""The durable pipeline: intake and store of deliveries, the worker that turns jobs, the
senders that drain outboxes, the /v1/decide batcher, and the loops they all run on."""
