"""Development infrastructure for Baton: the local Kafka broker (`local_kafka`), a TLS/SASL broker
(`secure_kafka`), a 3-broker cluster (`kafka_cluster`), the offline model and embeddings servers
(`local_model`, `local_embeddings`), each a module with `ensure_up`/`stop`-style functions. What
they share is public in its own modules: `processes` (every launcher), `broker_process` (a Kafka
broker JVM's life), `kafka_jars`, `kafka_probes`; the secured broker's parts are `kafka_acls`,
`kafka_tls` and `secure_kafka_setup`."""

__all__: list[str] = []  # a family of launcher modules: import the one you need
