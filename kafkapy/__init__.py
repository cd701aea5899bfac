"""kafkapy: Apache Kafka, re-implemented in Python, wire-compatible."""

__version__ = "0.1.0"
