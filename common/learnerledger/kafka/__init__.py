"""Kafka adapter: topics, producers and consumers as the services use them."""

from aiokafka import errors as _errors

#: Errors that mean the broker cannot be reached or has no leader right now (it is restarting,
#: or a partition is moving); a worker restarts after them instead of ending the service.
KAFKA_UNREACHABLE: tuple[type[Exception], ...] = (
    _errors.KafkaConnectionError,
    _errors.KafkaTimeoutError,
    _errors.NodeNotReadyError,
    _errors.RequestTimedOutError,
    _errors.LeaderNotAvailableError,
    _errors.NotLeaderForPartitionError,
    _errors.CoordinatorNotAvailableError,
    _errors.NoBrokersAvailable,
)
