"""Between the protobuf messages of ``learnerledger.v1`` and the domain: the one mapping.

Every service and adapter that turns a domain value into a message, or a message into a domain
value, calls these functions (one per message kind) instead of mapping fields by hand:

- :mod:`.instants`: ``google.protobuf.Timestamp`` and the instants the domain accepts;
- :mod:`.enums`: the enum tables (NCrF levels, results, entry kinds, categories, ...);
- :mod:`.events`: completion requests, ``CompletionEvent`` and ``LedgerEntry``;
- :mod:`.catalog`: courses; :mod:`.redemptions`: programmes and redemption decisions;
- :mod:`.verification`: chain breaks, signed checkpoints, checkpoint problems;
- :mod:`.transcripts`: transcripts, credentials and completions without credit.

The package depends on the domain and the generated messages only. Framing (Kafka record
values, upcasting older schema versions, dead letters) stays in ``learnerledger.kafka.codec``.
"""
