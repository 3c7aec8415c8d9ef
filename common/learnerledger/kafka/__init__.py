"""Kafka adapter: topics, producers and consumers as the services use them."""
