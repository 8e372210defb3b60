"""The production-shaped settings, without a broker: replication and min.insync.replicas of the
topics Baton provisions, a multi-address bootstrap, and the 3-node cluster's server.properties."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.kafka_cluster import configured, render_properties
from kafka_io import KafkaSettings
from orchestrator.runtime.topics import TopicProvisioningError, topic_specs


def test_min_insync_replicas_from_the_environment_is_set_on_every_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("BATON_MIN_INSYNC_REPLICAS", "2")
    specs = topic_specs(KafkaSettings())
    assert specs and all(spec.configs["min.insync.replicas"] == "2" for spec in specs)
    state = next(spec for spec in specs if spec.name == "baton.executions.state")
    assert state.configs == {"cleanup.policy": "compact", "min.insync.replicas": "2"}


def test_without_min_insync_replicas_the_brokers_default_applies() -> None:
    assert all("min.insync.replicas" not in spec.configs for spec in topic_specs(KafkaSettings()))


def test_min_insync_replicas_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(TopicProvisioningError, match="exceeds the replication factor 2"):
        topic_specs(KafkaSettings(replication_factor=2, min_insync_replicas=3))


def test_a_comma_separated_bootstrap_is_a_list_of_addresses() -> None:
    settings = KafkaSettings(kafka_bootstrap="127.0.0.1:19192, 127.0.0.1:19194,127.0.0.1:19196,")
    assert settings.bootstrap_servers == ["127.0.0.1:19192", "127.0.0.1:19194", "127.0.0.1:19196"]
    assert KafkaSettings().bootstrap_servers == ["127.0.0.1:9092"]


def test_cluster_nodes_are_three_voters_replicating_everything(tmp_path: Path) -> None:
    cluster = configured(state=tmp_path, base_port=20000)
    assert cluster.bootstrap == "127.0.0.1:20000,127.0.0.1:20002,127.0.0.1:20004"
    ports = [p for node in cluster.nodes for p in (node.port, node.controller_port)]
    assert len(set(ports)) == 6
    properties = [dict(line.split("=", 1) for line in render_properties(cluster, node).splitlines()
                       if not line.startswith("#")) for node in cluster.nodes]
    assert [p["node.id"] for p in properties] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in properties} == {
        "1@127.0.0.1:20001,2@127.0.0.1:20003,3@127.0.0.1:20005"}
    for p in properties:
        assert p["default.replication.factor"] == p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.replication.factor"] == "3"
        assert p["min.insync.replicas"] == p["transaction.state.log.min.isr"] == "2"
        assert p["unclean.leader.election.enable"] == "false"
    assert len({p["log.dirs"] for p in properties}) == 3
